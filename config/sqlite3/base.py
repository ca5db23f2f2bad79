"""Django's SQLite backend, with write transactions queued inside the process.

SQLite has one writer. Every Gust transaction begins ``IMMEDIATE`` (it takes
the write lock at BEGIN), and a second thread's BEGIN waits in SQLite's busy
handler, which sleeps in steps of up to 100 ms instead of waking when the
lock frees: 20 threads starting seq50 executions at once spent ~80% of the
wall time asleep (bench/README.md, "HTTP path"). Here the threads of one
process first queue on a ``threading.Lock`` per database file, held from
BEGIN to COMMIT/ROLLBACK/close, so the next one starts the moment the lock is
released. Between processes (web, worker, tracker, the workers' pool) the
same happens with an advisory ``flock`` on ``<database>-writer.lock``, taken
after the thread lock and polled every 0.2-1 ms, so a process whose turn it
is begins within a millisecond instead of after a busy-handler sleep of up to
100 ms: the worker pool's jobs each write three or four times (bench/README.md,
"Broker throughput"). Writes outside a transaction still meet the busy handler.

The lock is held exactly while SQLite's own write lock would be held by this
process, so nothing waits that did not wait before; a thread that has waited
the busy timeout for it goes on to BEGIN anyway, where SQLite decides as it
always did (``database is locked`` after another busy timeout).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_lock_files: dict[tuple[int, str], int] = {}  # (pid, database) -> fd: a forked child opens its own


def _write_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def _lock_file(name: str) -> int | None:
    """This process's descriptor of the database's writer lock file; None
    for an in-memory database or where it can not be made."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    key = (os.getpid(), name)
    with _locks_guard:
        fd = _lock_files.get(key)
        if fd is None:
            try:
                fd = os.open(f"{name}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return None
            _lock_files[key] = fd
        return fd


def _flock(fd: int, timeout: float) -> bool:
    """Take the cross-process lock, polling: a blocking flock could not give
    up after ``timeout`` as SQLite's busy handler does."""
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.001)


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock_held = None  # the lock, while this connection holds it
    _file_lock_held = None  # the lock file's descriptor, while this connection holds it

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode in ("IMMEDIATE", "EXCLUSIVE") and self._write_lock_held is None:
            name = str(self.settings_dict["NAME"])
            lock = _write_lock(name)
            timeout = float((self.settings_dict.get("OPTIONS") or {}).get("timeout", 5))
            start = time.monotonic()
            if lock.acquire(timeout=timeout):
                self._write_lock_held = lock
                fd = _lock_file(name)
                if fd is not None and _flock(fd, max(timeout - (time.monotonic() - start), 0.0)):
                    self._file_lock_held = fd
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self):
        fd, self._file_lock_held = self._file_lock_held, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        lock, self._write_lock_held = self._write_lock_held, None
        if lock is not None:
            lock.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
