"""``manage.py reliability``: crash, restart, race and fuzz scenarios with real
Gust processes on a throwaway database; writes docs/reliability.md (and the
JSON beside it in bench/results/). The scenarios live in bench/ (reliability.py,
scenarios.py, fuzz.py, report.py); this command only parses options and writes
the files."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import reliability, report
from bench import scenarios as scenario_runs
from bench.reliability import SCENARIOS, Options
from tracker.conf import results_dir

DOC = Path(settings.BASE_DIR) / "docs" / "reliability.md"


class Command(BaseCommand):
    help = (
        "Kill -9 / SIGTERM / restart / concurrent-completion / fuzzing scenarios against real web, worker and "
        "tracker processes on a throwaway database; writes docs/reliability.md."
    )
    requires_system_checks = []  # the parent touches no database

    def add_arguments(self, parser):
        parser.add_argument(
            "--quick", action="store_true", help="short version of every scenario (what the test suite runs, ~1 min)"
        )
        parser.add_argument(
            "--scenarios", default=None, help="comma separated, any of " + ",".join(SCENARIOS) + " (default: all)"
        )
        parser.add_argument(
            "--database",
            choices=["sqlite", "postgres"],
            default=None,
            help="sqlite (ORM broker) or postgres (Redis broker at REDIS_URL); default: postgres "
            "when DATABASE_URL is a PostgreSQL URL, else sqlite",
        )
        parser.add_argument(
            "--broker",
            choices=["orm", "redis"],
            default=None,
            help="django-q2 broker (default: orm on SQLite, redis on PostgreSQL)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help=f"the Markdown report (default {DOC.relative_to(settings.BASE_DIR)})",
        )
        parser.add_argument(
            "--json",
            type=Path,
            default=None,
            help="the JSON result (default bench/results/reliability-<timestamp>.json)",
        )
        parser.add_argument("--keep", action="store_true", help="keep the throwaway database and the process logs")
        parser.add_argument(
            "--from-json",
            type=Path,
            default=None,
            help="run nothing: write the Markdown report again from a saved JSON result",
        )
        parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--options-json", default=None, help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        say = lambda msg: self.stdout.write(msg)  # noqa: E731
        if opts["child"]:
            o = Options(**json.loads(opts["options_json"] or "{}"))
            result = scenario_runs.run_child(o, opts["child"], say)
            if result["failures"]:
                raise CommandError("; ".join(result["failures"]))
            return
        if opts["from_json"]:
            result = json.loads(opts["from_json"].read_text())
            out_md = opts["output"] or DOC
            out_md.write_text(report.render_markdown(result, result.get("command", "?")))
            self.stdout.write(f"reliability: wrote {out_md} from {opts['from_json']}")
            return
        url = os.environ.get("DATABASE_URL", "")
        database = opts["database"] or ("postgres" if url.startswith("postgres") else "sqlite")
        broker = opts["broker"] or ("redis" if database == "postgres" else "orm")
        scenarios = [s.strip() for s in (opts["scenarios"] or ",".join(SCENARIOS)).split(",") if s.strip()]
        unknown = [s for s in scenarios if s not in SCENARIOS]
        if unknown:
            raise CommandError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
        o = Options.quick_options() if opts["quick"] else Options()
        o.scenarios, o.broker = scenarios, broker
        started = dt.datetime.now(dt.UTC)
        try:
            result, rc, tail = reliability.run_parent(
                o, database, url if url.startswith("postgres") else None, opts["keep"], say
            )
        except Exception as exc:
            raise CommandError(f"could not run the reliability scenarios: {exc}") from exc
        if result is None:
            raise CommandError(f"the reliability child failed (exit {rc}) before writing results:\n{tail}")
        result["timestamp"] = started.isoformat(timespec="seconds")
        result["commit"] = _commit()
        command = self._command_line(opts, database)
        result["command"] = command
        out_md = opts["output"] or DOC
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(report.render_markdown(result, command))
        out_json = opts["json"] or results_dir() / f"reliability-{started:%Y%m%dT%H%M%SZ}.json"
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        self.stdout.write(f"reliability: wrote {out_md} and {out_json}")
        if rc != 0 or result["failures"]:
            raise CommandError(
                "some scenarios could not run: "
                + "; ".join(result["failures"] or [f"exit {rc}"])
                + (f"\n--- child log tail ---\n{tail}" if tail else "")
            )

    @staticmethod
    def _command_line(opts, database: str) -> str:
        parts = ["python", "manage.py", "reliability"]
        if opts["quick"]:
            parts.append("--quick")
        if opts["scenarios"]:
            parts += ["--scenarios", opts["scenarios"]]
        if database == "postgres":
            parts += ["--database", "postgres"]
        if opts["broker"]:
            parts += ["--broker", opts["broker"]]
        return shlex.join(parts)


def _commit() -> str:
    """The commit the report was made from, and whether the tree had changes."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD") or "?"
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return f"{head} + uncommitted changes" if dirty else head
    except (OSError, subprocess.SubprocessError):
        return "?"
