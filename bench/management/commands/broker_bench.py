"""``manage.py broker_bench``: worker jobs/s through the ORM and Redis
brokers on a throwaway database (bench/broker.py; bench/README.md, "Broker
throughput"). Writes bench/results/broker-<timestamp>.json and .md."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import broker as bench_broker
from bench import children
from tracker.conf import results_dir

TARGETS = {"orm": 300.0, "redis": 1000.0}


class Command(BaseCommand):
    help = "Worker jobs/s for a no-op worker action through the ORM and Redis brokers; no job may run twice."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--runs",
            default="orm:1x2,redis:1x4",
            help="comma-separated broker:CLUSTERSxWORKERS (default orm:1x2,redis:1x4)",
        )
        parser.add_argument("--jobs", type=int, default=3000, help="jobs per run (1..100000)")
        parser.add_argument("--profile", type=Path, default=None, help="py-spy raw profiles of the workers here")
        parser.add_argument("--output", type=Path, default=None)
        parser.add_argument("--child", choices=["seed", "wait"], help=argparse_suppress())

    def handle(self, *args, **opts):
        if opts["child"]:
            return self._child(opts["child"], opts["jobs"])
        if not 1 <= opts["jobs"] <= 100_000:
            raise CommandError("--jobs must be from 1 to 100000")
        runs = [self._parse(r) for r in opts["runs"].split(",") if r.strip()]
        started = dt.datetime.now(dt.UTC)
        results = []
        for brk, clusters, workers in runs:
            self.stdout.write(f"broker_bench: {brk} broker, {clusters} worker process(es) x {workers} workers")
            load_before = [round(x, 2) for x in os.getloadavg()]
            res = bench_broker.run_one(brk, clusters, workers, opts["jobs"], self.stdout.write, opts["profile"])
            res["load_average_before"] = load_before
            res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            res["target_jobs_per_s"] = TARGETS[brk]
            results.append(res)
            self.stdout.write(
                f"  {res['jobs_per_s']} jobs/s (target {TARGETS[brk]:g}), runs {res['runs']['runs']}, "
                f"run twice {res['runs']['run_more_than_once']}, ok={res['ok']}"
            )
        doc = {
            "kind": "broker_bench",
            "timestamp": started.isoformat(timespec="seconds"),
            "command": "python manage.py broker_bench --runs " + opts["runs"] + f" --jobs {opts['jobs']}",
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "ok": all(r["ok"] for r in results),
            "results": results,
        }
        out = opts["output"] or results_dir() / f"broker-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, markdown(doc), self.stdout.write)
        if not doc["ok"]:
            raise CommandError("a run lost a job or ran one twice (see the JSON)")

    @staticmethod
    def _parse(text: str) -> tuple[str, int, int]:
        try:
            brk, shape = text.strip().split(":")
            clusters, workers = (int(x) for x in shape.lower().split("x"))
        except ValueError:
            raise CommandError(f"--runs: {text!r} is not broker:CLUSTERSxWORKERS, e.g. redis:1x4") from None
        if brk not in TARGETS or not (1 <= clusters <= 8 and 1 <= workers <= 16):
            raise CommandError(f"--runs: {text!r}: broker orm or redis, 1-8 processes of 1-16 workers")
        return brk, clusters, workers

    def _child(self, kind: str, jobs: int):
        from django.db import connection

        from bench import isolation

        isolation.check_connected(connection.settings_dict)
        out = bench_broker.seed(jobs) if kind == "seed" else bench_broker.wait(jobs, bench_broker.WAIT_S)
        self.stdout.write(json.dumps(out, default=str))


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def markdown(doc: dict) -> str:
    lines = [
        "| broker | database | processes x workers | jobs | jobs/s | target | worker CPU ms/job "
        "| PostgreSQL / Redis CPU s | machine busy ms/job | runs | run twice | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["results"]:
        srv = r.get("server_cpu_s", {})
        lines.append(
            f"| {r['broker']} | {r['database']} | {r['clusters']} x {r['workers_per_cluster']} | {r['jobs']} "
            f"| {r['jobs_per_s']} | {r['target_jobs_per_s']:g} | {r.get('worker_cpu_ms_per_job')} "
            f"| {srv.get('postgres')} / {srv.get('redis')} | {r.get('machine_busy_ms_per_job')} "
            f"| {r['runs']['runs']} | {r['runs']['run_more_than_once']} | {r['ok']} |"
        )
    return "\n".join(lines) + "\n"
