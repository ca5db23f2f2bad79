"""Where an async action's result came from: the door it came through and
how (``mode``), for the live latency figures (``tracker.latency``).

Every interface that hands a result to ``services.complete_action`` says so
with one line around the call::

    with completions.completing("by hand", door="operator"):
        services.complete_action(...)

The innermost ``completing`` wins: the tracker's periodic hooks run under
"timeout" (an overdue action failed by a sweep), and the early-callback
inbox, one of those hooks, says "callback" inside it. While a ``completing``
block is open, a cheap counter (a database execute wrapper, one call per
statement) counts the SQL statements spent, so each completion's row says
how many it took up to its record. A result with no ``completing`` around it
is "by hand" through an unnamed door ("other").

It lives in ``workflows`` because the doors of the REST API and the timer
loop are here, and ``workflows`` never imports ``tracker``.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

# The door a mode comes through when the caller names none.
DEFAULT_DOOR = {
    "callback": "signed-url",
    "poll": "tracker",
    "timeout": "sweep",
    "by hand": "api",
    "approval": "approval-page",
    "failed to start": "worker",
}


@dataclass
class Source:
    mode: str  # callback, poll, by hand, approval, timeout, failed to start (hybrid- is added from the action)
    door: str  # api, signed-url, notification, inbox, tracker, sweep, timer, operator, approval-*, worker
    detected_at: datetime  # when Gust received the answer (by default: when the door opened its block)
    polls: int | None = None
    outside_done_at: Any = None  # as the outside system reported it: ISO 8601 text or epoch seconds
    statements: int = field(default=0, compare=False)  # counted since the block opened or the last record

    def take_statements(self) -> int:
        """The statements counted so far, and start counting again (for a
        block that completes several actions, as a sweep does)."""
        n, self.statements = self.statements, 0
        return n


_current: contextvars.ContextVar[Source | None] = contextvars.ContextVar("gust_completion_source", default=None)


@contextlib.contextmanager
def completing(
    mode: str,
    detected_at: datetime | None = None,
    polls: int | None = None,
    outside_done_at: Any = None,
    door: str | None = None,
):
    """Results completed inside this block came back by ``mode`` through ``door``."""
    source = Source(
        mode, door or DEFAULT_DOOR.get(mode, "other"), detected_at or timezone.now(), polls, outside_done_at
    )

    def count(execute, sql, params, many, context):
        source.statements += 1
        return execute(sql, params, many, context)

    token = _current.set(source)
    try:
        with connection.execute_wrapper(count):
            yield source
    finally:
        _current.reset(token)


def current() -> Source | None:
    return _current.get()
