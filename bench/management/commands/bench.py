"""End-to-end benchmark on a throwaway database: ``manage.py bench``.

    python manage.py bench [--scenarios noop1,seq50,fan100,conc] [--repeat N]
                           [--output PATH] [--http]

The command never touches the configured database: it creates a temporary
one (a SQLite file in a new temp directory, or ``gust_bench_<pid>`` on the
PostgreSQL server of DATABASE_URL), re-runs itself in a child process pointed
at it, which migrates it, loads the benchmark workflows and runs the
scenarios, then deletes it. See bench/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from bench import isolation
from bench.procs import orphan_guard
from bench.runner import DEFAULT_REPEAT, SCENARIOS
from tracker.conf import results_dir


def _parse_scenarios(value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}")
    return list(dict.fromkeys(names))


def _parse_repeat(value: str) -> dict[str, int]:
    """``N`` for every scenario, or ``noop1=100,conc=3`` per scenario."""
    value = value.strip()
    if value.isdigit():
        n = int(value)
        if n < 1:
            raise argparse.ArgumentTypeError("--repeat must be at least 1")
        return {s: n for s in SCENARIOS}
    out = {}
    for part in value.split(","):
        name, _, n = part.partition("=")
        name = name.strip()
        if name not in SCENARIOS or not n.strip().isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"bad --repeat item {part!r}: use N or name=N[,name=N]")
        out[name] = int(n)
    return out


class Command(BaseCommand):
    help = (
        "Measure executions end to end (start call -> row SUCCESS) on a throwaway database: "
        "noop1, seq50, fan100 (+join) and conc (20 concurrent seq50)."
    )
    requires_system_checks = []  # the parent touches no database; the child checks what it needs

    def add_arguments(self, parser):
        parser.add_argument(
            "--scenarios",
            type=_parse_scenarios,
            default=list(SCENARIOS),
            help=f"comma-separated, from {','.join(SCENARIOS)} (default: all)",
        )
        parser.add_argument(
            "--repeat",
            type=_parse_repeat,
            default={},
            help="executions per scenario (rounds for conc): N for all, or name=N,... "
            f"(default: {','.join(f'{k}={v}' for k, v in DEFAULT_REPEAT.items())})",
        )
        parser.add_argument("--warmup", type=int, default=1, help="untimed executions before each scenario (default 1)")
        parser.add_argument("--threads", type=int, default=20, help="concurrent executions per conc round (default 20)")
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="write the JSON here (default: bench/results/bench-<timestamp>.json and bench/results/latest.json)",
        )
        parser.add_argument(
            "--http", action="store_true", help="go through POST/GET /v2/executions with Django's test Client"
        )
        parser.add_argument(
            "--keep", action="store_true", help="keep the throwaway database (and its directory) and print where it is"
        )
        parser.add_argument(
            "--profile",
            type=Path,
            default=None,
            help="also write a cProfile of the timed part (child process) to this file",
        )
        # Internal: set by the parent when it re-runs itself on the throwaway database.
        parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)

    # --- parent --------------------------------------------------------------

    def handle(self, *args, **opts):
        if opts["child"]:
            return self.handle_child(opts)
        if opts["warmup"] < 0 or opts["threads"] < 1:
            raise CommandError("--warmup must be >= 0 and --threads >= 1")
        repeat = {**DEFAULT_REPEAT, **opts["repeat"]}
        started = dt.datetime.now(dt.UTC)
        command = self._command_line(opts)
        try:
            db = isolation.create()
        except Exception as exc:
            raise CommandError(f"could not create the throwaway database: {exc}") from exc
        self.stdout.write(f"bench: {db.describe()}")
        child_result = db.tmpdir / "result.json"
        child_log = db.tmpdir / "child.log"
        argv = [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "bench",
            "--child",
            str(child_result),
            "--scenarios",
            ",".join(opts["scenarios"]),
            "--repeat",
            ",".join(f"{k}={v}" for k, v in repeat.items()),
            "--warmup",
            str(opts["warmup"]),
            "--threads",
            str(opts["threads"]),
        ]
        if opts["http"]:
            argv.append("--http")
        if opts["profile"]:
            argv += ["--profile", str(opts["profile"].resolve())]
        env = dict(db.env)
        env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"))
        env["PYTHONUNBUFFERED"] = "1"
        env["GUST_API_AUTH"] = "0"  # the throwaway database has no users; --http measures the API, not logins
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
            log_tail = self._log_tail(child_log)
        finally:
            db.drop(keep=opts["keep"])
        if opts["keep"]:
            self.stdout.write(f"bench: kept {db.describe()} and {db.tmpdir}")
        else:
            self.stdout.write("bench: dropped the throwaway database")
        if result is None:
            raise CommandError(f"the benchmark child failed (exit {rc}) before writing results:\n{log_tail}")
        result["timestamp"] = started.isoformat(timespec="seconds")
        result["command"] = command
        result["database"]["configured"] = isolation.mask_url(os.environ.get("DATABASE_URL", "")) or "(default SQLite)"
        paths = self._write(result, started, opts["output"])
        for p in paths:
            self.stdout.write(f"bench: wrote {p}")
        if rc != 0 or not result.get("ok"):
            raise CommandError(
                "benchmark FAILED: "
                + "; ".join(result.get("failures") or [f"child exit {rc}"])
                + (f"\n--- child log tail ---\n{log_tail}" if log_tail else "")
            )
        self.stdout.write(self.style.SUCCESS(self._summary(result)))

    @staticmethod
    def _command_line(opts) -> str:
        parts = ["python", "manage.py", "bench", "--scenarios", ",".join(opts["scenarios"])]
        if opts["repeat"]:
            parts += ["--repeat", ",".join(f"{k}={v}" for k, v in opts["repeat"].items())]
        if opts["warmup"] != 1:
            parts += ["--warmup", str(opts["warmup"])]
        if opts["threads"] != 20:
            parts += ["--threads", str(opts["threads"])]
        if opts["output"]:
            parts += ["--output", str(opts["output"])]
        if opts["http"]:
            parts.append("--http")
        if opts["profile"]:
            parts += ["--profile", str(opts["profile"])]
        line = shlex.join(parts)
        url = os.environ.get("DATABASE_URL")
        return f"DATABASE_URL={shlex.quote(isolation.mask_url(url))} {line}" if url else line

    @staticmethod
    def _log_tail(path: Path, lines: int = 40) -> str:
        """The end of the child's stderr, without the trace lines."""
        if not path.exists():
            return ""
        with open(path, errors="replace") as f:
            tail = deque((ln for ln in f if " gust.trace " not in ln), maxlen=lines)
        return "".join(tail).rstrip()

    @staticmethod
    def _write(result: dict, started: dt.datetime, output: Path | None) -> list[Path]:
        text = json.dumps(result, indent=2, sort_keys=False) + "\n"
        if output is not None:
            targets = [output]
        else:
            stamp = started.strftime("%Y%m%dT%H%M%SZ")
            targets = [results_dir() / f"bench-{stamp}.json", results_dir() / "latest.json"]
        for p in targets:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        return targets

    @staticmethod
    def _summary(result: dict) -> str:
        rows = [f"bench OK ({result['database']['vendor']}, {result['mode']}):"]
        for name, s in result["scenarios"].items():
            rows.append(
                f"  {name:<7} n={s['n']:<4} p50 {s['p50_ms']:9.2f} ms  p95 {s['p95_ms']:9.2f} ms  "
                f"mean {s['mean_ms']:9.2f} ms  wall {s['wall_s']:8.3f} s  {s['tasks_per_s']:8.0f} tasks/s"
            )
        return "\n".join(rows)

    # --- child (runs on the throwaway database) ------------------------------

    def handle_child(self, opts):
        from django.db import connection

        from bench import runner

        say = lambda msg: self.stdout.write(msg)  # noqa: E731
        try:
            db_name = isolation.check_connected(connection.settings_dict)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        failures: list[str] = []
        result = {
            "ok": False,
            "mode": "http" if opts["http"] else "direct",
            "machine": {},
            "database": {"vendor": connection.vendor, "name": db_name, "throwaway": True},
            "settings": {},
            "options": {
                "scenarios": opts["scenarios"],
                "repeat": {k: v for k, v in {**DEFAULT_REPEAT, **opts["repeat"]}.items() if k in opts["scenarios"]},
                "warmup": opts["warmup"],
                "threads": opts["threads"],
                "http": opts["http"],
            },
            "scenarios": {},
            "failures": failures,
        }
        try:
            migrate_throwaway(self, "bench", connection.vendor, db_name)
            result["machine"] = _machine_info(connection)
            result["database"].update(_db_info(connection))
            result["settings"] = _settings_info(connection)
            names = runner.load_workflows()
            say(f"bench: loaded workflows {', '.join(names)}")
            repeat = {**DEFAULT_REPEAT, **opts["repeat"]}
            options = runner.Options(
                repeat=repeat, warmup=opts["warmup"], http=opts["http"], threads=opts["threads"], progress=say
            )
            profiler = None
            if opts["profile"]:
                import cProfile

                profiler = cProfile.Profile()
            started = time.perf_counter()
            for i, name in enumerate(opts["scenarios"], 1):
                say(
                    f"bench: scenario {i}/{len(opts['scenarios'])} {name} "
                    f"({options.repeat[name]} {'rounds' if name == 'conc' else 'executions'})"
                )
                t0 = time.perf_counter()
                try:
                    if profiler:
                        profiler.enable()
                    result["scenarios"][name] = runner.run_scenario(name, options)
                except runner.BenchFailure as exc:
                    failures.append(f"{name}: {exc}")
                    say(f"[{name}] FAILED: {exc}")
                finally:
                    if profiler:
                        profiler.disable()
                    say(step_done("bench", f"scenario {i}/{len(opts['scenarios'])} {name}", t0, started))
            if profiler:
                profiler.dump_stats(str(opts["profile"]))
                say(f"bench: cProfile written to {opts['profile']}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            result["ok"] = not failures and len(result["scenarios"]) == len(opts["scenarios"])
            runner.close_connections()
            opts["child"].write_text(json.dumps(result, indent=2) + "\n")
        if failures:
            raise CommandError("; ".join(failures))


def migrate_throwaway(command: BaseCommand, prefix: str, vendor: str, db_name: str) -> None:
    """Migrate the throwaway database, with the migrate command's numbered, timed steps in the output."""
    command.stdout.write(f"{prefix}: migrating {vendor} database {db_name}")
    t0 = time.perf_counter()
    # The raw streams: a second OutputWrapper would end "Applying x..." with a newline.
    call_command("migrate", interactive=False, verbosity=1, stdout=command.stdout._out, stderr=command.stderr._out)
    command.stdout.write(f"{prefix}: migrated in {time.perf_counter() - t0:.1f} s")


def step_done(prefix: str, what: str, t0: float, started: float) -> str:
    """``bench: scenario 2/4 seq50 done in 12.3 s (40.1 s since the first)``: one line per long step."""
    now = time.perf_counter()
    return f"{prefix}: {what} done in {now - t0:.1f} s ({now - started:.1f} s since the first)"


def _machine_info(connection) -> dict:
    import django

    try:
        cpus_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus_usable = os.cpu_count()
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "django": django.get_version(),
        "db_vendor": connection.vendor,
        "cpu_count": os.cpu_count(),
        "cpu_usable": cpus_usable,
        "cpu_model": model,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "git": _git_info(),
    }


def _git_info() -> dict | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head or None, "dirty": bool(dirty)}


def _db_info(connection) -> dict:
    if connection.vendor == "sqlite":
        import sqlite3

        with connection.cursor() as c:
            c.execute("PRAGMA journal_mode")
            journal = c.fetchone()[0]
            c.execute("PRAGMA synchronous")
            sync = c.fetchone()[0]
        return {"version": sqlite3.sqlite_version, "journal_mode": journal, "synchronous": sync}
    with connection.cursor() as c:
        c.execute("SHOW server_version")
        version = c.fetchone()[0]
        c.execute("SHOW synchronous_commit")
        sync = c.fetchone()[0]
    return {"version": version, "synchronous_commit": sync, "host": connection.settings_dict.get("HOST")}


def _settings_info(connection) -> dict:
    import logging

    sd = connection.settings_dict
    return {
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "conn_max_age": sd.get("CONN_MAX_AGE"),
        "transaction_mode": (sd.get("OPTIONS") or {}).get("transaction_mode"),
        "trace_log_level": logging.getLevelName(logging.getLogger("gust.trace").getEffectiveLevel()),
        "debug": settings.DEBUG,
    }
