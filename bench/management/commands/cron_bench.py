"""``manage.py cron_bench``: N cron triggers every minute for M minutes
with P timer processes on a throwaway database; counts the executions they
started (expected N*M, no duplicates). bench/cron.py; writes
bench/results/cron-<timestamp>.json and .md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import children
from bench import cron as bench_cron
from tracker.conf import results_dir


class Command(BaseCommand):
    help = "Cron triggers fired by several timer processes: executions counted, duplicates found (throwaway database)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--triggers", type=int, default=10, help="cron triggers (1..1000)")
        parser.add_argument("--minutes", type=int, default=5, help="executions of each, one a minute (1..60)")
        parser.add_argument("--processes", type=int, default=2, help="timer processes (manage.py run_tracker, 1..8)")
        parser.add_argument("--output", type=Path, default=None)
        parser.add_argument("--child", choices=["seed", "verify"], help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        if opts["child"]:
            return self._child(opts)
        if not (1 <= opts["triggers"] <= 1000 and 1 <= opts["minutes"] <= 60 and 1 <= opts["processes"] <= 8):
            raise CommandError("--triggers 1..1000, --minutes 1..60, --processes 1..8")
        started = dt.datetime.now(dt.UTC)
        res = bench_cron.run(opts["triggers"], opts["minutes"], opts["processes"], self.stdout.write)
        doc = {
            "kind": "cron_bench",
            "timestamp": started.isoformat(timespec="seconds"),
            "command": (
                f"python manage.py cron_bench --triggers {opts['triggers']} --minutes {opts['minutes']} "
                f"--processes {opts['processes']}"
            ),
            **res,
        }
        out = opts["output"] or results_dir() / f"cron-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, markdown(doc), self.stdout.write)
        if not doc["ok"]:
            raise CommandError(
                f"expected {doc['expected']} executions and no duplicates, got {doc['executions']} "
                f"with {doc['duplicates']} duplicates"
            )

    def _child(self, opts):
        from django.db import connection

        from bench import isolation

        isolation.check_connected(connection.settings_dict)
        out = bench_cron.seed(opts["triggers"], opts["minutes"]) if opts["child"] == "seed" else bench_cron.verify()
        self.stdout.write(json.dumps(out))


def markdown(doc: dict) -> str:
    return (
        f"{doc['database']}: {doc['triggers']} cron triggers '* * * * *' x {doc['minutes']} minutes, "
        f"{doc['processes']} timer processes: {doc['executions']} executions started (expected "
        f"{doc['expected']}), {doc['duplicates']} duplicates, {doc['triggers_left']} triggers left, "
        f"per trigger {doc['per_trigger']}, states {doc['states']}, {doc['elapsed_s']} s; ok={doc['ok']}\n"
    )
