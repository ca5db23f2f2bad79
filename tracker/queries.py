"""How the results tracker asks an outside system about an async action.

A query function takes the tracked action (an ``ActionInfo``: the
ActionExecution's ``id``, ``name``, ``input``, ``runtime_context``,
``attempt`` and ``handed_over``, which is all a status query needs) and
returns a QueryResult; it raises on errors (the tracker backs off and
retries, never drops the item). Register one per action class in
``QUERIES``; tests pass their own mapping to the Tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracker import http
from workflows import egress
from workflows.models import HANDED_OVER

_DONE = {
    "SUCCESS": "SUCCESS",
    "SUCCEEDED": "SUCCESS",
    "DONE": "SUCCESS",
    "COMPLETED": "SUCCESS",
    "ERROR": "ERROR",
    "FAILED": "ERROR",
    "FAILURE": "ERROR",
}


class QueryError(Exception):
    pass


class ActionInfo:
    """What the tracker reads of an ActionExecution to query it: a few
    fields, without instantiating the model (its JSON and datetime fields
    cost more than the poll at 1,000s of polls a second)."""

    __slots__ = ("id", "name", "input", "runtime_context", "attempt")

    def __init__(self, id: str, name: str, input: dict, runtime_context: dict, attempt: int = 1):
        self.id, self.name, self.input = id, name, input or {}
        self.runtime_context, self.attempt = runtime_context or {}, attempt

    @property
    def handed_over(self) -> bool:
        return HANDED_OVER in self.runtime_context


@dataclass(frozen=True)
class QueryResult:
    done: bool
    state: str | None = None  # SUCCESS or ERROR when done
    output: Any = None
    finished_at: Any = None  # when the outside system says it finished (its answer's ``finished_at``), if it does

    @classmethod
    def running(cls) -> QueryResult:
        return cls(False)


def http_status(action) -> QueryResult:
    """GET the job's status URL (a kept connection of this thread, see
    tracker.http). It answers JSON with ``state`` (or ``status``):
    RUNNING/PENDING keep waiting; SUCCESS/DONE and ERROR/FAILED finish the
    action with ``output`` (or ``result``), and ``finished_at`` (ISO 8601 or
    epoch seconds) says when the job ended. A URL the egress policy refuses
    finishes the action in ERROR with the reason: asking again can not help."""
    url = action.input.get("status_url") or action.runtime_context.get("status_url")
    if not url and not action.handed_over:
        return QueryResult.running()  # the worker has not sent the job yet: its answer may name one
    if not url:
        raise QueryError("no status_url: neither the action input nor the job's answer named one")
    try:
        body = http.get_json(url, timeout=10)
    except egress.EgressRefused as exc:
        return QueryResult(True, "ERROR", str(exc))
    except http.StatusError as exc:
        raise QueryError(str(exc)) from exc
    if not isinstance(body, dict):
        raise QueryError(f"status answer of {egress.shown(url)} is not a JSON object")
    state = _DONE.get(str(body.get("state") or body.get("status") or "").upper())
    if state is None:
        return QueryResult.running()
    return QueryResult(True, state, body.get("output", body.get("result")), body.get("finished_at"))


QUERIES: dict[str, Callable] = {
    "std.mistral_http": http_status,
    "gust.http_job": http_status,
}


def query_for(action_name: str) -> Callable | None:
    """The query function for an action class: ``TRACKER["QUERIES"]`` (dotted
    paths, e.g. a batch function for one outside system) wins over the
    built-ins. A function with ``many = True`` takes a list of actions and
    returns {action id: QueryResult or Exception}."""
    from django.utils.module_loading import import_string

    from tracker import conf

    override = conf.get("QUERIES").get(action_name)
    return import_string(override) if override else QUERIES.get(action_name)
