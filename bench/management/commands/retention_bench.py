"""``manage.py retention_bench``: delete 100,000 finished executions with
``expire_executions`` while clients run workflows over HTTP, and compare the
clients' p95 with and without the deletion running (bench/retention.py;
bench/README.md, "Retention"). Writes bench/results/retention-<timestamp>.json and .md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import children
from bench import retention as bench_retention
from tracker.conf import results_dir


class Command(BaseCommand):
    help = "Clients' latency before, during and after deleting N finished executions (throwaway database)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--old", type=int, default=100_000, help="finished executions to delete (1..1000000)")
        parser.add_argument("--clients", type=int, default=20, help="client threads (1..100)")
        parser.add_argument("--phase-seconds", type=float, default=30.0, help="length of the before and after phases")
        parser.add_argument("--batch-size", type=int, default=100, help="expire_executions --batch-size")
        parser.add_argument("--output", type=Path, default=None)
        parser.add_argument("--child", choices=["seed", "verify"], help=argparse.SUPPRESS)
        parser.add_argument("--ids-file", help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        if opts["child"]:
            return self._child(opts)
        if not (
            1 <= opts["old"] <= 1_000_000
            and 1 <= opts["clients"] <= 100
            and 1 <= opts["batch_size"] <= 10_000
            and 1 <= opts["phase_seconds"] <= 600
        ):
            raise CommandError("--old 1..1000000, --clients 1..100, --batch-size 1..10000, --phase-seconds 1..600")
        started = dt.datetime.now(dt.UTC)
        self.stdout.write(
            f"retention_bench: {opts['old']} old executions, {opts['clients']} clients, batches of {opts['batch_size']}"
        )
        res = bench_retention.run(
            opts["old"], opts["clients"], opts["phase_seconds"], opts["batch_size"], self.stdout.write
        )
        doc = {
            "kind": "retention_bench",
            "timestamp": started.isoformat(timespec="seconds"),
            "command": (
                f"python manage.py retention_bench --old {opts['old']} --clients {opts['clients']} "
                f"--batch-size {opts['batch_size']} --phase-seconds {opts['phase_seconds']:g}"
            ),
            **res,
        }
        out = opts["output"] or results_dir() / f"retention-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, markdown(doc), self.stdout.write)
        if not doc["ok"]:
            raise CommandError(f"the check failed: {doc['checked']} errors {doc['client_errors']}")

    def _child(self, opts):
        from django.db import connection

        from bench import isolation

        isolation.check_connected(connection.settings_dict)
        if opts["child"] == "seed":
            out = bench_retention.seed(opts["old"])
        else:
            out = bench_retention.verify(opts["old"], json.loads(Path(opts["ids_file"]).read_text()))
        self.stdout.write(json.dumps(out))


def markdown(doc: dict) -> str:
    rows = ["| phase | clients' runs | p50 ms | p95 ms | p99 ms |", "| --- | --- | --- | --- | --- |"]
    for name, p in doc["phases"].items():
        rows.append(f"| {name} | {p['n']} | {p.get('p50_ms')} | {p.get('p95_ms')} | {p.get('p99_ms')} |")
    return (
        "\n".join(rows) + f"\n\n{doc['database']}: {doc['old']} executions deleted in {doc['delete_s']} s "
        f"({doc['deleted_per_s']}/s, batches of {doc['batch_size']}); p95 during / before = "
        f"{doc['p95_during_over_before']} (target <= 1.2: {'met' if doc['met'] else 'missed'}); ok={doc['ok']}\n"
    )
