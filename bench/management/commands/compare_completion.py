"""``manage.py compare_completion``: callback vs polling vs hybrid, end to end.

Like ``manage.py bench`` it never touches the configured database: the
parent creates a throwaway one (bench.isolation) and re-runs itself as a
child pointed at it. The child migrates it, starts the simulated outside
service (bench/outside.py) and real Gust processes — gunicorn web, ``manage.py
worker`` and, per polling mode, ``manage.py run_tracker`` — and measures per
mode: latency from "outside job done" to "next task running", CPU seconds of
the Gust processes and SQL statements per completion; then the idle tracker
with 1,000 tracked actions and poll latency with 10,000 outstanding.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import compare, isolation
from bench.compare import Mode, Options
from bench.procs import orphan_guard
from tracker.conf import results_dir


def _parse_modes(values: list[str]) -> list[Mode]:
    modes = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    modes.append(Mode.parse(part))
                except ValueError as exc:
                    raise argparse.ArgumentTypeError(str(exc)) from None
    return list(dict.fromkeys(modes))


class Command(BaseCommand):
    help = (
        "Compare async completion by callback, polling (several QUERY_INTERVAL / THREAD_POOL_SIZE) and hybrid "
        "against a simulated outside service, with real web/worker/tracker processes on a throwaway database."
    )
    requires_system_checks = []  # the parent touches no database

    def add_arguments(self, parser):
        d = Options()
        parser.add_argument("--n", type=int, default=None, help=f"executions per mode (default {d.n}; --quick 20)")
        parser.add_argument(
            "--delay",
            type=float,
            default=None,
            help=f"seconds from job start to job done (default {d.delay:g}; --quick 0.3)",
        )
        parser.add_argument(
            "--jitter",
            type=float,
            default=None,
            help="extra U(0, J) seconds per job (default: the mode's QUERY_INTERVAL; callback: delay/2)",
        )
        parser.add_argument(
            "--rate", type=float, default=None, help=f"executions started per second (default {d.rate:g}; --quick 40)"
        )
        parser.add_argument(
            "--modes",
            nargs="+",
            default=None,
            help="callback, poll-<interval>-<pool>, hybrid[-<interval>-<pool>] "
            "(space or comma separated); "
            "default: " + " ".join(m.name for m in compare.DEFAULT_MODES),
        )
        parser.add_argument(
            "--drop-fraction",
            type=float,
            default=None,
            help=f"hybrid: share of callbacks never sent (default {d.drop_fraction:g})",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="hybrid: seconds before polling starts (default: the mode's interval)",
        )
        parser.add_argument(
            "--batch-queries",
            action="store_true",
            help="modes poll with the batch query function instead of one GET per item",
        )
        parser.add_argument(
            "--broker",
            choices=["orm", "redis"],
            default="orm",
            help="django-q2 broker of the worker (default orm; redis uses REDIS_URL)",
        )
        parser.add_argument(
            "--no-extras", action="store_true", help="skip the idle-tracker and 10,000-outstanding measurements"
        )
        parser.add_argument("--idle-tracked", type=int, default=None, help=f"default {d.idle_tracked}")
        parser.add_argument("--idle-seconds", type=float, default=None, help=f"default {d.idle_seconds:g}")
        parser.add_argument("--outstanding", type=int, default=None, help=f"default {d.outstanding}")
        parser.add_argument(
            "--sample",
            type=int,
            default=None,
            help=f"finishing jobs measured among few / many outstanding (default {d.sample})",
        )
        parser.add_argument(
            "--query-shapes",
            action="store_true",
            help="also record the most frequent SQL statements per process and mode",
        )
        parser.add_argument(
            "--scale",
            action="store_true",
            help="the tracker at scale (bench/scale.py: the floor, per-item and batch polling at "
            "500 to 100,000 outstanding, 0.1 s) instead of the modes; with --quick, tiny sizes",
        )
        parser.add_argument(
            "--scale-parts",
            default=None,
            help="with --scale, only these parts, comma-separated, in this order: "
            "floor,per_item,batch_idle,batch,fast (the floor always runs)",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="smoke test: n=20, delay 0.3 s, modes callback, poll-0.1s-x10, hybrid-0.2s-x10, "
            "small extras; under a minute",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="write the JSON here only (default: bench/results/compare-<timestamp>.json "
            "and bench/results/compare-latest.json)",
        )
        parser.add_argument("--keep", action="store_true", help="keep the throwaway database and the process logs")
        parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--options-json", default=None, help=argparse.SUPPRESS)

    # --- options -------------------------------------------------------------

    @staticmethod
    def _options(opts) -> Options:
        given = {
            "n": opts["n"],
            "delay": opts["delay"],
            "jitter": opts["jitter"],
            "rate": opts["rate"],
            "drop_fraction": opts["drop_fraction"],
            "grace": opts["grace"],
            "idle_tracked": opts["idle_tracked"],
            "idle_seconds": opts["idle_seconds"],
            "outstanding": opts["outstanding"],
            "sample": opts["sample"],
        }
        if opts["modes"]:
            try:
                given["modes"] = _parse_modes(opts["modes"])
            except argparse.ArgumentTypeError as exc:
                raise CommandError(str(exc)) from None
        if opts["quick"]:
            o = Options.quick_options(**given)
        else:
            o = Options(**{k: v for k, v in given.items() if v is not None})
        o.batch_queries = opts["batch_queries"]
        o.broker = opts["broker"]
        o.extras = not opts["no_extras"]
        o.query_shapes = opts["query_shapes"]
        o.scale = opts["scale"]
        o.scale_parts = opts["scale_parts"]
        if o.scale:
            o.extras = False
            if not opts["modes"]:
                o.modes = []
        if o.n < 1 or o.rate <= 0 or o.delay < 0 or not (0 <= o.drop_fraction <= 1) or o.sample < 1:
            raise CommandError("--n and --sample must be >= 1, --rate > 0, --delay >= 0, --drop-fraction in [0, 1]")
        if not o.modes and not o.scale:
            raise CommandError("no modes to run")
        return o

    # --- parent --------------------------------------------------------------

    def handle(self, *args, **opts):
        if opts["child"]:
            return self.handle_child(opts)
        options = self._options(opts)
        started = dt.datetime.now(dt.UTC)
        try:
            db = isolation.create()
        except Exception as exc:
            raise CommandError(f"could not create the throwaway database: {exc}") from exc
        self.stdout.write(f"compare: {db.describe()}")
        child_result = db.tmpdir / "result.json"
        child_log = db.tmpdir / "child.log"
        payload = options.as_json()
        argv = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "compare_completion",
            "--child",
            str(child_result),
            "--options-json",
            json.dumps(payload),
        ]
        env = dict(db.env)
        env["DJANGO_SETTINGS_MODULE"] = "config.settings"  # the processes run as bin/run runs them
        env.pop("GUST_SYNC_WORKER", None)
        env["PYTHONUNBUFFERED"] = "1"
        rc = None
        try:
            with open(child_log, "w") as log:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=settings.BASE_DIR,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    preexec_fn=orphan_guard(),
                )
                for line in proc.stdout:
                    self.stdout.write(line.rstrip("\n"))
                rc = proc.wait()
            result = json.loads(child_result.read_text()) if child_result.exists() else None
            log_tail = _tail(child_log)
        finally:
            db.drop(keep=opts["keep"])
        self.stdout.write(
            f"compare: kept {db.describe()} and {db.tmpdir}"
            if opts["keep"]
            else "compare: dropped the throwaway database"
        )
        if result is None:
            raise CommandError(f"the comparison child failed (exit {rc}) before writing results:\n{log_tail}")
        result["timestamp"] = started.isoformat(timespec="seconds")
        result["command"] = self._command_line(opts)
        result["database"]["configured"] = isolation.mask_url(os.environ.get("DATABASE_URL", "")) or "(default SQLite)"
        result["targets"] = compare.evaluate(result)
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        for p in self._write(result, started, opts["output"]):
            self.stdout.write(f"compare: wrote {p}")
        if rc != 0 or not result.get("ok"):
            raise CommandError(
                "comparison FAILED: "
                + "; ".join(result.get("failures") or [f"child exit {rc}"])
                + (f"\n--- child log tail ---\n{log_tail}" if log_tail else "")
            )
        if "scale" in result:
            from bench import scale

            self.stdout.write(self.style.SUCCESS(scale.markdown(result)))
        else:
            self.stdout.write(self.style.SUCCESS(compare.summary(result)))

    @staticmethod
    def _command_line(opts) -> str:
        parts = ["python", "manage.py", "compare_completion"]
        for key in (
            "n",
            "delay",
            "jitter",
            "rate",
            "drop_fraction",
            "grace",
            "idle_tracked",
            "idle_seconds",
            "outstanding",
            "sample",
            "scale_parts",
            "output",
        ):
            if opts[key] is not None:
                parts += [f"--{key.replace('_', '-')}", str(opts[key])]
        if opts["modes"]:
            parts += ["--modes", *opts["modes"]]
        for flag in ("batch_queries", "no_extras", "query_shapes", "scale", "quick", "keep"):
            if opts[flag]:
                parts.append(f"--{flag.replace('_', '-')}")
        if opts["broker"] != "orm":
            parts += ["--broker", opts["broker"]]
        line = shlex.join(parts)
        url = os.environ.get("DATABASE_URL")
        return f"DATABASE_URL={shlex.quote(isolation.mask_url(url))} {line}" if url else line

    @staticmethod
    def _write(result: dict, started: dt.datetime, output: Path | None) -> list[Path]:
        text = json.dumps(result, indent=2) + "\n"
        if output is not None:
            targets = [output]
        else:
            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            if "scale" in result:  # not a comparison of modes: the compare page keeps showing the last one
                vendor = result["database"]["vendor"]
                targets = [
                    results_dir() / f"tracker-scale-{stamp}-{vendor}.json",
                    results_dir() / f"tracker-scale-latest-{vendor}.json",
                ]
            else:
                targets = [results_dir() / f"compare-{stamp}.json", results_dir() / "compare-latest.json"]
        for p in targets:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        if "scale" in result:
            from bench import scale

            report = scale.markdown(result)
            more = [p.with_suffix(".md") for p in targets]
            for p in more:
                p.write_text(report)
            targets += more
        return targets

    # --- child (runs on the throwaway database) ------------------------------

    def handle_child(self, opts):
        from django.db import connection

        from bench.driver import CompareFailure, Driver, Outside
        from bench.management.commands.bench import (
            _db_info,
            _machine_info,
            _settings_info,
            migrate_throwaway,
            step_done,
        )
        from bench.procs import WEB_THREADS, WEB_WORKERS, GustProcesses
        from workflows import services

        say = lambda msg: self.stdout.write(msg)  # noqa: E731
        try:
            db_name = isolation.check_connected(connection.settings_dict)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        raw = json.loads(opts["options_json"] or "{}")
        raw["modes"] = [Mode.parse(m) for m in raw.get("modes", [])]
        o = Options(**raw)
        failures: list[str] = []
        result = {
            "ok": False,
            "kind": "compare_completion",
            "broker": o.broker,
            "options": o.as_json(),
            "machine": {},
            "database": {"vendor": connection.vendor, "name": db_name, "throwaway": True},
            "settings": {},
            "processes": {},
            "modes": [],
            "extras": {},
            "failures": failures,
        }
        scratch = Path(opts["child"]).parent  # the run's temporary directory: logs and SQL counts
        procs = outside = None
        try:
            migrate_throwaway(self, "compare", connection.vendor, db_name)
            result["machine"] = _machine_info(connection)
            result["database"].update(_db_info(connection))
            result["settings"] = _settings_info(connection)
            services.save_workflows(compare.WORKFLOW_YAML, update=True)
            connection.close()  # the driver reads with short-lived connections only
            outside = Outside(scratch, o.delay)
            procs = GustProcesses(scratch, dict(os.environ), broker=o.broker, query_shapes=o.query_shapes)
            procs.bench_pids["outside"] = outside.proc.pid
            procs.start_web_and_worker()
            result["processes"] = {
                "web": f"gunicorn config.wsgi --workers {WEB_WORKERS} --threads {WEB_THREADS} on {procs.url}",
                "worker": f"manage.py worker (django-q2, {settings.Q_CLUSTER['workers']} workers, {o.broker} broker, "
                f"poll {settings.Q_CLUSTER.get('poll')} s)",
                "tracker": "manage.py run_tracker, restarted per mode with GUST_QUERY_INTERVAL / GUST_THREAD_POOL_SIZE",
                "outside": f"python -m bench.outside on {outside.url}",
            }
            say(
                f"compare: web {procs.url} (pid {procs.web.pid}), worker pid {procs.worker.pid}, "
                f"outside service {outside.url}, {o.broker} broker"
            )
            driver = Driver(o, procs, outside, say)
            driver.warm_up()
            result["idle_baseline"] = driver.idle_baseline()
            started = time.perf_counter()
            for i, mode in enumerate(o.modes, 1):
                say(f"compare: mode {i}/{len(o.modes)} {mode.name} ({o.n} executions)")
                t0 = time.perf_counter()
                try:
                    result["modes"].append(driver.run_mode(mode))
                except CompareFailure as exc:
                    failures.append(f"{mode.name}: {exc}")
                    say(f"[{mode.name}] FAILED: {exc}")
                    procs.stop_tracker()
                say(step_done("compare", f"mode {i}/{len(o.modes)} {mode.name}", t0, started))
            if o.scale:
                from bench import scale

                try:
                    sizes = scale.quick_sizes() if o.quick else scale.full_sizes()
                    if o.scale_parts:
                        sizes["parts"] = [p.strip() for p in o.scale_parts.split(",") if p.strip()]
                    result["scale"] = scale.Scale(driver, sizes).run()
                    result["scale"]["targets"] = scale.evaluate(result["scale"])
                except CompareFailure as exc:
                    failures.append(f"scale: {exc}")
                    say(f"[scale] FAILED: {exc}")
            if o.extras:
                say(f"compare: extras (idle tracker with {o.idle_tracked} tracked, {o.outstanding} outstanding)")
                t0 = time.perf_counter()
                try:
                    result["extras"] = driver.run_extras()
                except CompareFailure as exc:
                    failures.append(f"extras: {exc}")
                    say(f"[extras] FAILED: {exc}")
                say(step_done("compare", "extras", t0, started))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if procs is not None:
                # Short: the last process to stop pauses every RUNNING workflow
                # (graceful shutdown), i.e. the thousands of never-finishing
                # background executions of a database that is dropped next.
                codes = procs.stop_all(timeout=5.0)
                result["processes"]["exit_codes"] = codes
                if failures:
                    for log in sorted(scratch.glob("*.log")):
                        say(f"--- {log.name} (tail) ---\n{_tail(log, 15)}")
            if outside is not None:
                outside.stop()
            result["ok"] = not failures and len(result["modes"]) == len(o.modes)
            from django.db import connections

            connections.close_all()
            Path(opts["child"]).write_text(json.dumps(result, indent=2, default=str) + "\n")
        if failures:
            raise CommandError("; ".join(failures))


def _tail(path: Path, lines: int = 40) -> str:
    from bench.management.commands.bench import Command as BenchCommand

    return BenchCommand._log_tail(path, lines)
