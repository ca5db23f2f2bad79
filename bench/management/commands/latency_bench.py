"""``manage.py latency_bench``: how fast the live latency figures and the
tracker page are with millions of completions (bench/live_latency.py), on a
throwaway database. Writes bench/results/live-latency-<timestamp>.json and .md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import children, isolation
from tracker.conf import results_dir


class Command(BaseCommand):
    help = "Time tracker.latency.figures() and /tracker/ per window over seeded roll-up buckets (throwaway database)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--completions", type=int, default=10_000_000, help="completions the buckets stand for")
        parser.add_argument("--days", type=float, default=30.0, help="days of per-minute buckets (0.01..90)")
        parser.add_argument("--groups", type=int, default=6, help="(mode, action name) pairs per minute (1..6)")
        parser.add_argument("--raw", type=int, default=20_000, help="raw completions to roll up (0..1000000)")
        parser.add_argument("--output", type=Path, default=None)
        parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        if not (
            0.01 <= opts["days"] <= 90
            and 1 <= opts["groups"] <= 6
            and 0 <= opts["raw"] <= 1_000_000
            and opts["completions"] >= 1
        ):
            raise CommandError("--days 0.01..90, --groups 1..6, --raw 0..1000000, --completions >= 1")
        if opts["child"]:
            return self._child(opts)
        started = dt.datetime.now(dt.UTC)
        db = isolation.create()
        self.stdout.write(f"latency_bench: {db.describe()}")
        try:
            children.migrate(db.env)
            res = children.run_child(
                "latency_bench",
                db.env,
                "--completions",
                str(opts["completions"]),
                "--days",
                str(opts["days"]),
                "--groups",
                str(opts["groups"]),
                "--raw",
                str(opts["raw"]),
            )
        finally:
            db.drop()
        doc = {
            "kind": "latency_bench",
            "timestamp": started.isoformat(timespec="seconds"),
            "database": db.vendor,
            "command": (
                f"python manage.py latency_bench --completions {opts['completions']} --days {opts['days']:g}"
                f" --groups {opts['groups']} --raw {opts['raw']}"
            ),
            "load_after": [round(x, 2) for x in os.getloadavg()],
            **res,
        }
        out = opts["output"] or results_dir() / f"live-latency-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, markdown(doc), self.stdout.write)

    def _child(self, opts):
        from django.db import connection

        from bench import live_latency

        isolation.check_connected(connection.settings_dict)
        say = lambda msg: self.stderr.write(msg)  # noqa: E731 (stdout's last line is the JSON)
        res = live_latency.seed(opts["completions"], opts["days"], opts["groups"], say)
        res.update(live_latency.measure(opts["raw"], say))
        self.stdout.write(json.dumps(res))


def markdown(doc: dict) -> str:
    rows = ["| window | figures() ms | /tracker/ page ms |", "| --- | --- | --- |"]
    for window, ms in doc["figures_ms"].items():
        rows.append(f"| {window} | {ms} | {doc['page_ms'][window]} |")
    roll = doc.get("roll_up")
    tail = f"; roll-up of {roll['rows']} raw completions: {roll['seconds']} s ({roll['rows_per_s']}/s)" if roll else ""
    return (
        "\n".join(rows) + f"\n\n{doc['database']}: {doc['buckets']} buckets ({doc['groups']} (mode, action) "
        f"pairs per minute over {doc['minutes']} minutes) standing for {doc['completions']} completions{tail}; "
        f"load after {doc['load_after']}\n"
    )
