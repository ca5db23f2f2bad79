"""``manage.py engine_bench``: engine v2's per-event cost at 100 and at
10,000 task executions (bench/engine.py), on a throwaway database, results
as JSON and Markdown in bench/results/engine-<timestamp>.*."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import engine as scenarios
from bench import isolation
from tracker.conf import results_dir


class Command(BaseCommand):
    help = "Time per engine event at the start and the end of a 10,000-step loop and a 5,000-task fan-out."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=int, default=scenarios.LOOP, help="iterations of the loop")
        parser.add_argument("--fan", type=int, default=scenarios.FAN, help="parallel tasks of the fan-out")
        parser.add_argument("--items", type=int, default=scenarios.ITEMS, help="items of the with-items task")
        parser.add_argument("--output", type=Path, default=None, help="JSON here (and .md beside it)")
        parser.add_argument("--child", type=Path, default=None, help=argparse_hidden())

    def handle(self, *args, **opts):
        if opts["child"]:
            return self._child(opts)
        db = isolation.create()
        self.stdout.write(f"engine_bench: {db.describe()}")
        env = {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        env.pop("GUST_SYNC_WORKER", None)
        out = db.tmpdir / "result.json"
        try:
            for cmd in (
                ["migrate", "--verbosity", "0"],
                [
                    "engine_bench",
                    "--child",
                    str(out),
                    "--loop",
                    str(opts["loop"]),
                    "--fan",
                    str(opts["fan"]),
                    "--items",
                    str(opts["items"]),
                ],
            ):
                proc = subprocess.run([sys.executable, "manage.py", *cmd], cwd=settings.BASE_DIR, env=env)
                if proc.returncode != 0:
                    raise CommandError(f"{' '.join(cmd[:1])} failed (exit {proc.returncode})")
            result = json.loads(out.read_text())
        finally:
            db.drop()
        result["database"] = db.vendor
        paths = self._write(result, opts["output"])
        self.stdout.write(self._markdown(result))
        self.stdout.write("results: " + ", ".join(map(str, paths)))

    def _child(self, opts):
        import logging

        # Trace lines are still built and emitted; only the console copy of
        # 15,000 INFO lines is left out of the measurement.
        logging.getLogger("gust.trace").setLevel(logging.WARNING)
        say = lambda msg: self.stdout.write(msg)  # noqa: E731
        say(f"loop of {opts['loop']} events")
        loop = scenarios.verdict(scenarios.run_loop(opts["loop"], say=say))
        say(f"fan-out of {opts['fan']} tasks")
        fan = scenarios.verdict(scenarios.run_fan(opts["fan"], say=say))
        say(f"with-items over {opts['items']} items")
        items = scenarios.verdict(scenarios.run_items(opts["items"], say=say))
        opts["child"].write_text(json.dumps({"loop": loop, "fan": fan, "items": items}))

    @staticmethod
    def _markdown(result: dict) -> str:
        rows = [
            "| scenario | tasks | median at start | median at end | p95 at end | end / start | "
            "SQL per event, start → end |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name in ("loop", "fan", "items"):
            r = result[name]
            size = f"{r['tasks']} ({r['items']} items)" if "items" in r else r["tasks"]
            rows.append(
                f"| {name} | {size} | {r['start']['median_ms']} ms | {r['end']['median_ms']} ms | "
                f"{r['end']['p95_ms']} ms | {r['end_over_start']} ({'flat' if r['flat'] else 'NOT flat'}) | "
                f"{r['start']['queries_per_event']} → {r['end']['queries_per_event']} |"
            )
        return f"Engine per-event cost ({result.get('database', '?')})\n\n" + "\n".join(rows) + "\n"

    def _write(self, result: dict, output: Path | None) -> list[Path]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        target = output or results_dir() / f"engine-{stamp}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result, indent=2))
        md = target.with_suffix(".md")
        md.write_text(self._markdown(result))
        return [target, md]


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS
