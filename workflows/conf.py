"""Gust's limits from ``settings.GUST``, read at call time so that
``override_settings`` (and a changed environment at start-up) apply."""

from __future__ import annotations

from django.conf import settings

from workflows.lang.limits import DEFAULT, Limits

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

_API_DEFAULTS = {"API_LIST_DEFAULT_LIMIT": 100, "API_LIST_MAX_LIMIT": 1000, "REPORT_MAX_ENTRIES": 10_000}


def limits() -> Limits:
    gust = getattr(settings, "GUST", {})
    return Limits(**{field: gust.get(key, getattr(DEFAULT, field)) for key, field in _LIMIT_KEYS.items()})


def api(name: str) -> int:
    return int(getattr(settings, "GUST", {}).get(name, _API_DEFAULTS[name]))


# Deadlines the overdue sweep enforces (see README "Nothing stays RUNNING forever").
_SECONDS_DEFAULTS = {"WORKER_QUEUE_TIMEOUT": 3600.0, "WORKER_LEASE": 30.0, "ASYNC_ACTION_TIMEOUT": 7 * 24 * 3600.0,
                     "WORKER_STOP_TIMEOUT": 30.0, "WORKER_REDISPATCH_AFTER": 300.0}


def seconds(name: str) -> float:
    return float(getattr(settings, "GUST", {}).get(name, _SECONDS_DEFAULTS[name]))
