"""Count the SQL a Gust process sends, for ``manage.py compare_completion``.

Imported by bench.apps only when ``GUST_COUNT_QUERIES_DIR`` is set
(the benchmark sets it for the web, worker and tracker processes it starts;
nothing else ever does). Then every database connection this process opens
gets an ``execute_wrapper`` that counts statements by their first keyword,
and ``commit()`` is counted too (SQLite's ``BEGIN IMMEDIATE`` and COMMIT do
not go through cursors, so statements alone would miss them).

Each process writes ``<dir>/<role>-<pid>.json`` — role from
``GUST_PROCESS_ROLE`` — when the benchmark asks (``request_flush`` writes a
token into each process's named pipe ``<dir>/<role>-<pid>.fifo``, on which
its writer thread sleeps), every ``IDLE_FLUSH_S`` when something changed,
and at exit, replacing the file atomically. A counter that woke five times a
second to write its file cost an idle tracker 0.4% of a core (on this
machine a thread's wake-up alone costs 50-175 us of CPU), a fifth of what
the tracker's own target allows. Forked children (gunicorn and
django-q2 workers) start from zero with their own file and writer thread.
The benchmark sums the files before and after a measurement.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import threading
import time
from pathlib import Path

from django.db.backends.signals import connection_created

IDLE_FLUSH_S = 5.0  # unasked, counts that changed are written this often
KINDS = ("select", "insert", "update", "delete", "savepoint", "other")

_dir = Path(os.environ.get("GUST_COUNT_QUERIES_DIR", "."))
_role = os.environ.get("GUST_PROCESS_ROLE", "gust")
_lock = threading.Lock()
_counts: dict[str, int] = {}
_version = 0  # bumped on each count; the writer skips unchanged snapshots
_written = -1
_token = ""  # the last flush request this process answered
_pid = os.getpid()
# GUST_COUNT_QUERIES_SHAPES=1: also count each statement's shape (its SQL
# without parameters, shortened), to see which queries a number is made of.
_shapes_on = os.environ.get("GUST_COUNT_QUERIES_SHAPES", "") not in ("", "0")
_shapes: dict[str, int] = {}


def _reset() -> None:
    global _counts, _version, _written, _pid, _shapes, _token
    _counts = {k: 0 for k in (*KINDS, "statements", "commits")}
    _shapes = {}
    _version, _written, _pid, _token = 0, -1, os.getpid(), ""


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
        data = {"role": _role, "pid": _pid, "time": time.time(), "token": _token, **_counts}
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


def _fifo_path(pid: int) -> Path:
    return _dir / f"{_role}-{pid}.fifo"


def _open_fifo() -> int | None:
    """This process's request pipe, opened for reading and writing (so it
    never reads an end of file); None where no pipe can be made."""
    path = _fifo_path(os.getpid())
    try:
        if not path.exists():
            os.mkfifo(path, 0o600)
        return os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None


def _writer(stop: threading.Event | None = None) -> None:
    """Sleeps in select() on this process's pipe: wakes when the benchmark
    asks (a token written to the pipe), or every IDLE_FLUSH_S."""
    global _token
    pid = os.getpid()
    fd = _open_fifo()
    wait = IDLE_FLUSH_S if stop is None else 0.05  # a test's writer looks at its stop event often
    last = time.monotonic()
    try:
        while os.getpid() == pid and not (stop and stop.is_set()):
            if fd is None:
                time.sleep(wait)
                ready = []
            else:
                ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                if time.monotonic() - last >= IDLE_FLUSH_S:
                    flush()
                    last = time.monotonic()
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            tokens = data.decode(errors="replace").split()
            if tokens:
                _token = tokens[-1]
                flush(force=True)
                last = time.monotonic()
    finally:
        if fd is not None and os.getpid() == pid:
            os.close(fd)


def request_flush(directory: Path, timeout: float = 2.0) -> None:
    """Ask every counting process to write its counts now (a token into its
    pipe), and wait (at most ``timeout``) until each one asked has."""
    directory = Path(directory)
    token = f"{time.monotonic_ns()}-{os.getpid()}"
    asked = set()
    for fifo in directory.glob("*.fifo"):
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it any more (the process is gone)
            fifo.unlink(missing_ok=True)
            continue
        try:
            os.write(fd, f"{token}\n".encode())
            asked.add(fifo.with_suffix(".json"))
        except OSError:
            pass
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout
    while asked and time.monotonic() < deadline:
        for path in list(asked):
            try:
                if json.loads(path.read_text()).get("token") == token:
                    asked.discard(path)
            except (OSError, ValueError):
                pass
        if asked:
            time.sleep(0.01)


def _start_writer() -> None:
    threading.Thread(target=_writer, name="gust-querycount", daemon=True).start()


def _after_fork_in_child() -> None:
    _reset()  # the parent's pipe stays the parent's: the child's writer opens its own
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
