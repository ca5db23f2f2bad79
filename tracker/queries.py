"""How the results tracker asks an outside system about an async action.

A query function takes the ActionExecution row and returns a QueryResult;
it raises on errors (the tracker backs off and retries, never drops the
item). Register one per action class in ``QUERIES``; tests pass their own
mapping to the Tracker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from workflows import egress

_DONE = {"SUCCESS": "SUCCESS", "SUCCEEDED": "SUCCESS", "DONE": "SUCCESS", "COMPLETED": "SUCCESS",
         "ERROR": "ERROR", "FAILED": "ERROR", "FAILURE": "ERROR"}


class QueryError(Exception):
    pass


@dataclass(frozen=True)
class QueryResult:
    done: bool
    state: str | None = None  # SUCCESS or ERROR when done
    output: Any = None

    @classmethod
    def running(cls) -> QueryResult:
        return cls(False)


def http_status(action) -> QueryResult:
    """GET the job's status URL. It answers JSON with ``state`` (or ``status``):
    RUNNING/PENDING keep waiting; SUCCESS/DONE and ERROR/FAILED finish the
    action with ``output`` (or ``result``). A URL the egress policy refuses
    finishes the action in ERROR with the reason: asking again can not help."""
    url = action.input.get("status_url") or action.runtime_context.get("status_url")
    if not url and not action.handed_over:
        return QueryResult.running()  # the worker has not sent the job yet: its answer may name one
    if not url:
        raise QueryError("no status_url: neither the action input nor the job's answer named one")
    try:
        with egress.session() as session:
            resp = session.get(url, timeout=10)
        resp.raise_for_status()
        body = resp.json()
    except egress.EgressRefused as exc:
        return QueryResult(True, "ERROR", str(exc))
    except (requests.RequestException, ValueError) as exc:
        raise QueryError(f"status query to {url} failed: {exc}") from exc
    state = _DONE.get(str(body.get("state") or body.get("status") or "").upper())
    if state is None:
        return QueryResult.running()
    return QueryResult(True, state, body.get("output", body.get("result")))


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
