"""``manage.py scaleout_bench``: the scale-out curve of issue 12 over real
HTTP, on a throwaway database, with W web and N worker processes per
configuration (bench/scaleout.py; bench/README.md, "Scale-out"). Writes
bench/results/scaleout-<timestamp>.json and .md."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import children
from bench import scaleout as bench_scaleout
from tracker.conf import results_dir

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"


def _counts(text: str, name: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CommandError(f"--{name}: {text!r} is not a comma-separated list of numbers") from None
    if not values or not all(1 <= v <= 8 for v in values):
        raise CommandError(f"--{name}: each from 1 to 8")
    return values


class Command(BaseCommand):
    help = (
        "Scale-out curve: bench_work10 (10 worker actions) driven over HTTP by N clients against W web and "
        "N worker processes per configuration; throughput, p95, and a check that no action ran twice or was lost."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--database",
            choices=["postgres", "sqlite"],
            default="postgres",
            help=f"postgres: a throwaway database on DATABASE_URL's server (default {DEFAULT_PG})",
        )
        parser.add_argument("--broker", choices=["redis", "orm"], default="redis")
        parser.add_argument("--workers", default="1,2,4", help="worker processes, one configuration each (1,2,4)")
        parser.add_argument("--web", default="1,2,4", help="web processes (gunicorn --workers), crossed with --workers")
        parser.add_argument("--pool", type=int, default=2, help="GUST_WORKERS of each worker process (2)")
        parser.add_argument("--clients", type=int, default=10, help="client threads (10)")
        parser.add_argument("--seconds", type=float, default=10.0, help="load per configuration (10 s)")
        parser.add_argument(
            "--poller",
            choices=["shared", "each"],
            default="shared",
            help="shared: one thread polls every pending execution per 5 ms round (the reference's "
            "concurrent scenario); each: every client polls its own every 5 ms",
        )
        parser.add_argument("--output", type=Path, default=None)
        parser.add_argument("--child", choices=["check"], help=argparse_suppress())
        parser.add_argument("--ids", type=Path, help=argparse_suppress())
        parser.add_argument("--runs-dir", type=Path, help=argparse_suppress())
        parser.add_argument("--redo-ok", action="store_true", help=argparse_suppress())

    def handle(self, *args, **opts):
        if opts["child"]:
            from django.db import connection

            from bench import isolation

            isolation.check_connected(connection.settings_dict)
            out = bench_scaleout.check(opts["ids"], opts["runs_dir"], opts["redo_ok"])
            self.stdout.write(json.dumps(out, default=str))
            return
        if not 1 <= opts["clients"] <= 100 or not 1 <= opts["seconds"] <= 600 or not 1 <= opts["pool"] <= 16:
            raise CommandError("--clients 1..100, --seconds 1..600, --pool 1..16")
        configs = bench_scaleout.configs_from(
            _counts(opts["web"], "web"), _counts(opts["workers"], "workers"), opts["pool"]
        )
        _database_env(opts["database"])
        started = dt.datetime.now(dt.UTC)
        load_before = [round(x, 2) for x in os.getloadavg()]
        doc = bench_scaleout.run_curve(
            configs,
            opts["clients"],
            opts["seconds"],
            self.stdout.write,
            opts["broker"],
            os.environ.get("REDIS_URL"),
            opts["poller"],
        )
        doc.update(
            {
                "kind": "scaleout_bench",
                "timestamp": started.isoformat(timespec="seconds"),
                "command": (
                    f"python manage.py scaleout_bench --database {opts['database']} --broker "
                    f"{opts['broker']} --workers {opts['workers']} --web {opts['web']} --pool "
                    f"{opts['pool']} --clients {opts['clients']} --seconds {opts['seconds']:g} "
                    f"--poller {opts['poller']}"
                ),
                "clients": opts["clients"],
                "seconds": opts["seconds"],
                "poller": opts["poller"],
                "load_average_before": load_before,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpu_count": os.cpu_count(),
            }
        )
        doc["ok"] = all(r["check"]["ok"] for r in doc["results"])
        out = opts["output"] or results_dir() / f"scaleout-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, bench_scaleout.markdown(doc), self.stdout.write)
        if not doc["ok"]:
            raise CommandError("an execution was lost or an action ran twice (see the JSON)")


def _database_env(database: str) -> None:
    """The throwaway database's server: DATABASE_URL's for postgres (or the
    local default), none for sqlite (bench.isolation makes a file)."""
    if database == "sqlite":
        os.environ.pop("DATABASE_URL", None)
    elif not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = DEFAULT_PG


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
