"""A wall-clock budget for pure Python code that may loop for ever.

Expressions run inside the engine's transaction, in whatever thread serves
the request or the job, so neither a signal (main thread only) nor a
separate process fits. One watchdog thread per process instead raises
``OutOfTime`` in the evaluating thread when its deadline passes
(``PyThreadState_SetAsyncExc``). That interrupts Python-level loops (YAQL
and compiled Jinja templates are Python); a single long C call (a huge
``str * int``) is not interrupted, which is why expressions also check sizes
before such operations.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class OutOfTime(BaseException):
    """Raised inside the evaluating thread. A BaseException, so that library
    code catching ``Exception`` (YAQL tries the next overload) lets it through."""


class _Watchdog:
    def __init__(self) -> None:
        # A plain Lock: its C-level __enter__ leaves no window in which the
        # asynchronous exception could be raised between acquiring and the
        # with-block that releases it.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._armed: dict[int, int] = {}  # token -> thread id
        self._deadlines: list[tuple[float, int]] = []
        self._tokens = itertools.count(1)
        self._pid: int | None = None

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # first use, or a forked child without the thread
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="gust-expression-watchdog", daemon=True).start()

    def arm(self, seconds: float) -> int:
        with self._lock:
            self._ensure_thread()
            token = next(self._tokens)
            self._armed[token] = threading.get_ident()
            earliest = self._deadlines[0][0] if self._deadlines else None
            deadline = time.monotonic() + seconds
            heapq.heappush(self._deadlines, (deadline, token))
            if earliest is None or deadline < earliest:
                self._wake.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._lock:
            if self._armed.pop(token, None) is None:
                # It fired: if the exception is still pending, drop it, so it
                # can not surface later in code outside the budget.
                _set_async_exc(threading.get_ident(), ctypes.py_object())

    def _loop(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._deadlines and (self._deadlines[0][0] <= now or self._deadlines[0][1] not in self._armed):
                    _, token = heapq.heappop(self._deadlines)
                    thread_id = self._armed.pop(token, None)
                    if thread_id is not None:
                        _set_async_exc(thread_id, OutOfTime)
                timeout = self._deadlines[0][0] - now if self._deadlines else None
                self._wake.wait(timeout)


_WATCHDOG = _Watchdog()


def run_within(seconds: float | None, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or OutOfTime once it has run ``seconds``; no budget when
    ``seconds`` is falsy."""
    if not seconds or seconds <= 0:
        return fn(*args)
    token = _WATCHDOG.arm(seconds)
    try:
        return fn(*args)
    finally:
        _WATCHDOG.disarm(token)
