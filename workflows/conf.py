"""The workflows app's settings: ``settings.GUST`` over ``DEFAULTS``, read at
call time so that ``override_settings`` (and a changed environment at
start-up) apply. Every module of the app reads its settings here; the other
apps read the few they share (``PUBLIC_URL``, ``API_AUTH``) here too.

config/settings.py fills ``GUST`` from the environment (``GUST_<NAME>``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from core.lang.limits import DEFAULT, Limits

# settings.GUST key -> Limits field
_LIMIT_KEYS = {
    "EXECUTION_FIELD_SIZE_LIMIT_KB": "field_size_kb",
    "EXPRESSION_TIMEOUT": "expression_seconds",
    "YAQL_LIMIT_ITERATORS": "yaql_limit_iterators",
    "YAQL_MEMORY_QUOTA": "yaql_memory_quota",
    "JINJA_MAX_RANGE": "jinja_max_range",
    "MAX_NESTING_DEPTH": "max_depth",
    "DEFINITION_SIZE_LIMIT_KB": "definition_kb",
    "YAML_ALIAS_LIMIT": "yaml_alias_nodes",
    "ENGINE_STEPS_PER_TRANSACTION": "engine_steps",
    "ENGINE_SECONDS_PER_TRANSACTION": "engine_seconds",
    "SUBWORKFLOW_MAX_DEPTH": "subworkflow_depth",
}


DEFAULTS: dict[str, Any] = {
    # Where users and outside systems reach this Gust (Mistral-Callback-URL, links in mail).
    "PUBLIC_URL": "http://127.0.0.1:8000",
    # Logins on the API and the pages (off: as Mistral's auth_enable = False).
    "API_AUTH": True,
    # /v2 lists: rows without `limit`, the most one may ask for; entries of one report.
    "API_LIST_DEFAULT_LIMIT": 100,
    "API_LIST_MAX_LIMIT": 1000,
    "REPORT_MAX_ENTRIES": 10_000,
    # Deadlines the overdue sweep enforces (see README "Nothing stays RUNNING forever").
    "WORKER_QUEUE_TIMEOUT": 3600.0,
    "WORKER_LEASE": 30.0,
    "ASYNC_ACTION_TIMEOUT": 7 * 24 * 3600.0,
    "WORKER_STOP_TIMEOUT": 30.0,
    "WORKER_REDISPATCH_AFTER": 300.0,
    # The live pages (workflows.live).
    "LIVE_TICK": 0.5,
    "LIVE_STREAM_SECONDS": 15.0,
    "LIVE_MAX_STREAMS": 2,
    "LIVE_KEEPALIVE": 5.0,
    # Sub-settings with their own defaults in their modules: the expiration
    # policy (workflows.retention) and the egress policy (workflows.egress).
    "EXPIRATION": {},
    "EGRESS": {},
    # The bounds on what a workflow or a caller controls (core.lang.limits.Limits).
    **{key: getattr(DEFAULT, field) for key, field in _LIMIT_KEYS.items()},
}


def reader(namespace: str, defaults: dict[str, Any]) -> Callable[[str], Any]:
    """``get(name)`` for one app's settings: ``settings.<namespace>[name]``,
    else ``defaults[name]``, looked up at each call. Every app's conf module
    is one of these; a name with no default is a KeyError (a typo, not a
    setting)."""

    def get(name: str) -> Any:
        values = getattr(settings, namespace, {})
        return values[name] if name in values else defaults[name]

    return get


def section(parent: Callable[[str], Any], key: str, defaults: dict[str, Any]) -> Callable[[str], Any]:
    """``get(name)`` for a mapping inside a namespace (``TRACKER["COMPLETIONS"]``)
    over the defaults of the module that reads it, looked up at each call."""

    def get(name: str) -> Any:
        values = parent(key)
        return values[name] if name in values else defaults[name]

    return get


get = reader("GUST", DEFAULTS)


def limits() -> Limits:
    return Limits(**{field: get(key) for key, field in _LIMIT_KEYS.items()})


def api(name: str) -> int:
    return int(get(name))


def seconds(name: str) -> float:
    return float(get(name))
