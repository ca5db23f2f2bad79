"""Django's SQLite backend, with write transactions queued inside the process.

SQLite has one writer. Every Gust transaction begins ``IMMEDIATE`` (it takes
the write lock at BEGIN), and a second thread's BEGIN waits in SQLite's busy
handler, which sleeps in steps of up to 100 ms instead of waking when the
lock frees: 20 threads starting seq50 executions at once spent ~80% of the
wall time asleep (bench/README.md, "HTTP path"). Here the threads of one
process first queue on a ``threading.Lock`` per database file, held from
BEGIN to COMMIT/ROLLBACK/close, so the next one starts the moment the lock is
released. Other processes (web, worker, tracker) still meet the busy handler.

The lock is held exactly while SQLite's own write lock would be held by this
process, so nothing waits that did not wait before; a thread that has waited
the busy timeout for it goes on to BEGIN anyway, where SQLite decides as it
always did (``database is locked`` after another busy timeout).
"""

from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _write_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock_held = None  # the lock, while this connection holds it

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode in ("IMMEDIATE", "EXCLUSIVE") and self._write_lock_held is None:
            lock = _write_lock(str(self.settings_dict["NAME"]))
            timeout = float((self.settings_dict.get("OPTIONS") or {}).get("timeout", 5))
            if lock.acquire(timeout=timeout):
                self._write_lock_held = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self):
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
