"""Count the SQL a Gust process sends, for ``manage.py compare_completion``.

Imported by bench.apps only when ``GUST_COUNT_QUERIES_DIR`` is set
(the benchmark sets it for the web, worker and tracker processes it starts;
nothing else ever does). Then every database connection this process opens
gets an ``execute_wrapper`` that counts statements by their first keyword,
and ``commit()`` is counted too (SQLite's ``BEGIN IMMEDIATE`` and COMMIT do
not go through cursors, so statements alone would miss them).

Each process writes ``<dir>/<role>-<pid>.json`` — role from
``GUST_PROCESS_ROLE`` — every ``FLUSH_S`` seconds when something changed and
at exit, replacing the file atomically. Forked children (gunicorn and
django-q2 workers) start from zero with their own file and writer thread.
The benchmark sums the files before and after a measurement.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path

from django.db.backends.signals import connection_created

FLUSH_S = 0.2
KINDS = ("select", "insert", "update", "delete", "savepoint", "other")

_dir = Path(os.environ.get("GUST_COUNT_QUERIES_DIR", "."))
_role = os.environ.get("GUST_PROCESS_ROLE", "gust")
_lock = threading.Lock()
_counts: dict[str, int] = {}
_version = 0  # bumped on each count; the writer skips unchanged snapshots
_written = -1
_pid = os.getpid()
# GUST_COUNT_QUERIES_SHAPES=1: also count each statement's shape (its SQL
# without parameters, shortened), to see which queries a number is made of.
_shapes_on = os.environ.get("GUST_COUNT_QUERIES_SHAPES", "") not in ("", "0")
_shapes: dict[str, int] = {}


def _reset() -> None:
    global _counts, _version, _written, _pid, _shapes
    _counts = {k: 0 for k in (*KINDS, "statements", "commits")}
    _shapes = {}
    _version, _written, _pid = 0, -1, os.getpid()


def _kind(sql: str) -> str:
    word = sql.lstrip()[:10].split(None, 1)[0].lower() if sql and sql.strip() else ""
    if word in ("select", "insert", "update", "delete"):
        return word
    if word in ("savepoint", "release", "rollback"):
        return "savepoint"
    return "other"


def _bump(kind: str, sql: str | None = None) -> None:
    global _version
    with _lock:
        _counts[kind] += 1
        if kind != "commits":
            _counts["statements"] += 1
        if _shapes_on:
            shape = (sql or kind.upper())[:SHAPE_CHARS]
            _shapes[shape] = _shapes.get(shape, 0) + 1
        _version += 1


SHAPE_CHARS = 160


def _wrapper(execute, sql, params, many, context):
    _bump(_kind(sql), sql)
    return execute(sql, params, many, context)


def _on_connection_created(sender, connection, **kwargs):
    # The wrapper list lives on the DatabaseWrapper, which outlives each
    # physical connection (CONN_MAX_AGE=0 reconnects per request): add once.
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def snapshot() -> dict:
    with _lock:
        data = {"role": _role, "pid": _pid, "time": time.time(), **_counts}
        if _shapes_on:
            data["shapes"] = dict(_shapes)
        return data


def flush(force: bool = False) -> None:
    global _written
    with _lock:
        version = _version
    if not force and version == _written:
        return
    data = snapshot()
    target = _dir / f"{_role}-{data['pid']}.json"
    tmp = target.with_suffix(f".tmp{threading.get_ident()}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, target)
        _written = version
    except OSError:
        pass  # the benchmark's directory is gone: nothing to report to


def _writer() -> None:
    pid = os.getpid()
    while os.getpid() == pid:
        time.sleep(FLUSH_S)
        flush()


def _start_writer() -> None:
    threading.Thread(target=_writer, name="gust-querycount", daemon=True).start()


def _after_fork_in_child() -> None:
    _reset()
    _start_writer()


def _patch_commit() -> None:
    from django.db.backends.base.base import BaseDatabaseWrapper

    original = BaseDatabaseWrapper.commit
    if getattr(original, "_gust_counted", False):
        return

    def commit(self):
        _bump("commits")
        return original(self)

    commit._gust_counted = True
    BaseDatabaseWrapper.commit = commit


def install() -> None:
    _reset()
    _dir.mkdir(parents=True, exist_ok=True)
    connection_created.connect(_on_connection_created, dispatch_uid="bench.querycount")
    _patch_commit()
    os.register_at_fork(after_in_child=_after_fork_in_child)
    atexit.register(flush, True)
    _start_writer()
    flush(force=True)


def read_totals(directory: Path) -> dict[str, dict[str, int]]:
    """Sum the files in ``directory`` by role: {role: {statements, commits, select, ...}}."""
    totals: dict[str, dict[str, int]] = {}
    for path in Path(directory).glob("*.json"):
        data = None
        for _ in range(3):  # os.replace is atomic; a failed read is a file that just vanished
            try:
                data = json.loads(path.read_text())
                break
            except (OSError, ValueError):
                time.sleep(0.01)
        if data is None:
            continue
        role = totals.setdefault(data.get("role", "?"), {k: 0 for k in (*KINDS, "statements", "commits")})
        for k in (*KINDS, "statements", "commits"):
            role[k] += int(data.get(k, 0))
        if "shapes" in data:
            shapes = role.setdefault("shapes", {})
            for shape, n in data["shapes"].items():
                shapes[shape] = shapes.get(shape, 0) + n
    return totals


if os.environ.get("GUST_COUNT_QUERIES_DIR"):
    install()
