"""How each async action's result came back, and how long it took.

The code that hands a result to ``workflows.services.complete_action`` (the
tracker's poll, the signed callback, the inbox) says so with
``completing(mode, ...)``; the ``action_finished`` receiver reads it.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Source:
    mode: str  # callback, poll, hybrid-callback, hybrid-poll (by hand and approval are inferred)
    detected_at: datetime  # when Gust received the callback or the poll answer
    polls: int | None = None
    outside_done_at: Any = None  # as the outside system reported it: ISO 8601 text or epoch seconds


_current: contextvars.ContextVar[Source | None] = contextvars.ContextVar("gust_completion_source", default=None)


@contextlib.contextmanager
def completing(mode: str, detected_at: datetime, polls: int | None = None, outside_done_at: Any = None):
    token = _current.set(Source(mode, detected_at, polls, outside_done_at))
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Source | None:
    return _current.get()
