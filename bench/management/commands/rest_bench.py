"""``manage.py rest_bench``: issue 12's scenarios over real HTTP.

The command opens no database itself: it makes a throwaway one
(bench.isolation), migrates it with ``manage.py migrate`` in a subprocess,
starts gunicorn, ``manage.py worker`` and ``manage.py run_tracker`` on it
(bench.procs.GustProcesses, as ``bin/run``; ``GUST_API_AUTH=0``), runs
bench.rest's scenarios against ``/v2``, stops the processes and drops the
database. See bench/README.md, "HTTP path".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import isolation, rest
from tracker.conf import results_dir


class Command(BaseCommand):
    help = (
        "Issue 12's REST benchmark (GET, noop1, seq50, fan100, async PUT, 20 concurrent seq50) against "
        "gunicorn + worker + tracker on a throwaway database; JSON and a Markdown table in bench/results/."
    )
    requires_system_checks = []  # the command touches no database

    def add_arguments(self, parser):
        parser.add_argument(
            "--scenarios",
            default=",".join(rest.DEFAULT_SCENARIOS),
            help="comma-separated, any of " + ",".join(rest.SCENARIOS),
        )
        parser.add_argument("--quick", action="store_true", help="tiny counts: checks the command runs end to end")
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="JSON here (and the .md beside it) instead of bench/results/rest-<timestamp>.*",
        )
        parser.add_argument("--keep", action="store_true", help="keep the throwaway database and the process logs")

    def handle(self, *args, **opts):
        from bench.procs import WEB_THREADS, WEB_WORKERS, GustProcesses

        scenarios = [s.strip() for s in opts["scenarios"].split(",") if s.strip()]
        unknown = set(scenarios) - set(rest.SCENARIOS)
        if unknown:
            raise CommandError(f"unknown scenarios: {', '.join(sorted(unknown))}")
        counts = rest.Counts.quick() if opts["quick"] else rest.Counts()
        started = dt.datetime.now(dt.UTC)
        db = isolation.create()
        say = lambda msg: self.stdout.write(msg)  # noqa: E731
        say(f"rest_bench: {db.describe()}")
        env = {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        env.pop("GUST_SYNC_WORKER", None)
        procs = None
        try:
            mig = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
                cwd=settings.BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
            )
            if mig.returncode != 0:
                raise CommandError(f"migrate failed:\n{mig.stderr[-3000:]}")
            procs = GustProcesses(db.tmpdir, env)
            procs.start_web_and_worker()
            procs.start_tracker(query_interval=5.0, pool_size=10, batch_queries=False)
            say(
                f"rest_bench: web {procs.url} (gunicorn {WEB_WORKERS} workers x {WEB_THREADS} threads), "
                f"worker, tracker; GUST_API_AUTH=0"
            )
            try:
                scen = rest.run(f"{procs.url}/v2", counts, scenarios, cpu=procs.cpu, say=say)
            except rest.BenchFailure as exc:
                tails = "\n".join(
                    f"--- {p.role} ---\n{p.log_tail(15)}" for p in (procs.web, procs.worker, procs.tracker) if p
                )
                raise CommandError(f"rest_bench FAILED: {exc}\n{tails}") from exc
        finally:
            if procs is not None:
                procs.stop_all(timeout=10.0)
            db.drop(keep=opts["keep"])
        if opts["keep"]:
            say(f"rest_bench: kept {db.tmpdir}")
        result = {
            "kind": "rest_bench",
            "ok": True,
            "timestamp": started.isoformat(timespec="seconds"),
            "command": "python manage.py rest_bench"
            + (" --quick" if opts["quick"] else "")
            + (f" --scenarios {opts['scenarios']}" if scenarios != rest.DEFAULT_SCENARIOS else ""),
            "counts": counts.as_json(),
            "database": {"vendor": db.vendor, "throwaway": True},
            "processes": f"gunicorn config.wsgi --workers {WEB_WORKERS} --threads {WEB_THREADS}, manage.py worker, "
            "manage.py run_tracker; GUST_API_AUTH=0",
            "machine": {"cpu_count": os.cpu_count(), "loadavg_at_end": list(os.getloadavg()), "git": _git()},
            "scenarios": scen,
        }
        result["targets"] = rest.judge(scen)
        md = rest.markdown(result)
        if opts["output"] is not None:
            paths = [opts["output"]]
        else:
            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            paths = [results_dir() / f"rest-{stamp}.json", results_dir() / "rest-latest.json"]
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(result, indent=2) + "\n")
            p.with_suffix(".md").write_text(md)
            say(f"rest_bench: wrote {p} and {p.with_suffix('.md').name}")
        self.stdout.write(md)


def _git() -> dict:
    def run(*argv):
        return subprocess.run(["git", *argv], cwd=settings.BASE_DIR, capture_output=True, text=True).stdout.strip()

    return {"commit": run("rev-parse", "--short", "HEAD"), "dirty": bool(run("status", "--porcelain", "-uno"))}
