"""YAQL ``<% %>`` and Jinja ``{{ }}`` expressions, as Mistral evaluates them.

A string that is exactly one expression keeps the type of its result
(``<% $.count %>`` gives an int); a string that mixes text and expressions is
rendered as text. Containers are evaluated recursively.

The functions available inside expressions are ``task(name)`` (``task()`` is
the current task), ``execution()`` and ``env()``. They read from an
:class:`ExprContext`, which the engine builds; nothing here touches a
database.
"""

from __future__ import annotations

import collections.abc  # noqa: F401  yaql 3.2 uses collections.abc without importing it
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import jinja2
import yaql
from jinja2.sandbox import SandboxedEnvironment
from yaql.language import exceptions as yaql_exc
from yaql.language import factory, specs, yaqltypes

YAQL_RE = re.compile(r"<%(.*?)%>", re.DOTALL)
JINJA_EXPR_RE = re.compile(r"{{(.*?)}}", re.DOTALL)
ANY_EXPR_RE = re.compile(r"<%.*?%>|{{.*?}}|{%.*?%}", re.DOTALL)


class ExpressionError(Exception):
    """An expression could not be parsed or evaluated."""


@dataclass
class ExprContext:
    """Everything an expression may read.

    ``data`` is ``$`` in YAQL and ``_`` in Jinja. ``task_lookup(name)``
    returns the task view (``{"id", "name", "state", "state_info",
    "result", "published"}``) for ``task(name)``; ``name`` is None for
    ``task()``.
    """

    data: dict
    task_lookup: Callable[[str | None], dict | None] = lambda name: None
    execution: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)


# --- YAQL -------------------------------------------------------------------

_YAQL_ENGINE = factory.YaqlFactory().create(
    options={
        "yaql.convertOutputData": True,
        "yaql.limitIterators": 100_000,
        "yaql.memoryQuota": 50_000_000,
    }
)
_YAQL_ROOT = yaql.create_context()


@specs.parameter("name", yaqltypes.String(nullable=True))
@specs.inject("ctx", yaqltypes.Context())
def _yaql_task(ctx, name=None):
    return ctx["__gust"].task_lookup(name)


@specs.inject("ctx", yaqltypes.Context())
def _yaql_execution(ctx):
    return ctx["__gust"].execution


@specs.inject("ctx", yaqltypes.Context())
def _yaql_env(ctx):
    return ctx["__gust"].env


@specs.parameter("text", yaqltypes.String())
def _yaql_json_parse(text):
    return json.loads(text)


def _yaql_json_dump(obj):
    return json.dumps(obj)


for _fn, _name in (
    (_yaql_task, "task"),
    (_yaql_execution, "execution"),
    (_yaql_env, "env"),
    (_yaql_json_parse, "json_parse"),
    (_yaql_json_dump, "json_dump"),
):
    _YAQL_ROOT.register_function(_fn, name=_name)


@lru_cache(maxsize=4096)
def _yaql_parse(expr: str):
    return _YAQL_ENGINE(expr)


def _yaql_eval(expr: str, ctx: ExprContext) -> Any:
    try:
        parsed = _yaql_parse(expr.strip())
    except yaql_exc.YaqlException as exc:
        raise ExpressionError(str(exc)) from exc
    context = _YAQL_ROOT.create_child_context()
    context["$"] = ctx.data
    context["__gust"] = ctx
    try:
        return parsed.evaluate(context=context)
    except KeyError as exc:
        raise ExpressionError(
            f"Can not evaluate YAQL expression [expression={expr.strip()}, error=key {exc} not found]"
        ) from exc
    except Exception as exc:  # yaql raises many kinds; all mean "this expression failed"
        raise ExpressionError(
            f"Can not evaluate YAQL expression [expression={expr.strip()}, error={exc}]"
        ) from exc


# --- Jinja ------------------------------------------------------------------

_JINJA = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


@lru_cache(maxsize=4096)
def _jinja_expression(expr: str):
    return _JINJA.compile_expression(expr.strip(), undefined_to_none=True)


@lru_cache(maxsize=4096)
def _jinja_template(text: str):
    return _JINJA.from_string(text)


def _jinja_vars(ctx: ExprContext) -> dict:
    return {
        "_": ctx.data,
        "task": ctx.task_lookup,
        "execution": lambda: ctx.execution,
        "env": lambda: ctx.env,
    }


def _jinja_eval(expr: str, ctx: ExprContext) -> Any:
    try:
        compiled = _jinja_expression(expr)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"Jinja syntax error: {exc.message}") from exc
    try:
        return compiled(**_jinja_vars(ctx))
    except Exception as exc:
        raise ExpressionError(
            f"Can not evaluate Jinja expression [expression={expr.strip()}, error={exc}]"
        ) from exc


def _jinja_render(text: str, ctx: ExprContext) -> str:
    try:
        return _jinja_template(text).render(**_jinja_vars(ctx))
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"Jinja syntax error: {exc.message}") from exc
    except Exception as exc:
        raise ExpressionError(f"Can not render Jinja template [template={text}, error={exc}]") from exc


# --- public API -------------------------------------------------------------


def has_expression(value: Any) -> bool:
    return isinstance(value, str) and ANY_EXPR_RE.search(value) is not None


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def evaluate_string(text: str, ctx: ExprContext) -> Any:
    stripped = text.strip()
    whole = YAQL_RE.fullmatch(stripped)
    if whole and stripped.count("<%") == 1:
        return _yaql_eval(whole.group(1), ctx)
    whole = JINJA_EXPR_RE.fullmatch(stripped)
    if whole and stripped.count("{{") == 1 and "{%" not in stripped:
        return _jinja_eval(whole.group(1), ctx)
    if "<%" in text:
        text = YAQL_RE.sub(lambda m: _to_text(_yaql_eval(m.group(1), ctx)), text)
    if "{{" in text or "{%" in text:
        text = _jinja_render(text, ctx)
    return text


def evaluate(value: Any, ctx: ExprContext) -> Any:
    """Evaluate every expression inside ``value`` (str, dict, list or scalar).

    Raises ExpressionError with Mistral-like wording when one fails.
    """
    if isinstance(value, str):
        return evaluate_string(value, ctx) if has_expression(value) else value
    if isinstance(value, dict):
        return {evaluate(k, ctx): evaluate(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, ctx) for v in value]
    return value


def syntax_errors(value: Any) -> list[str]:
    """Every syntax error in the expressions inside ``value``, without evaluating."""
    errors: list[str] = []
    if isinstance(value, str):
        for m in YAQL_RE.finditer(value):
            try:
                _yaql_parse(m.group(1).strip())
            except yaql_exc.YaqlException as exc:
                errors.append(str(exc))
        if "{{" in value or "{%" in value:
            try:
                _JINJA.parse(value)
            except jinja2.TemplateSyntaxError as exc:
                errors.append(f"Jinja syntax error: {exc.message}")
    elif isinstance(value, dict):
        for k, v in value.items():
            errors += syntax_errors(k) + syntax_errors(v)
    elif isinstance(value, list):
        for v in value:
            errors += syntax_errors(v)
    return errors
