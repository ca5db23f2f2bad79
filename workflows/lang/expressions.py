"""YAQL ``<% %>`` and Jinja ``{{ }}`` expressions, as Mistral evaluates them.

A string that is exactly one expression keeps the type of its result
(``<% $.count %>`` gives an int); a string that mixes text and expressions is
rendered as text. Containers are evaluated recursively.

The functions available inside expressions are ``task(name)`` (``task()`` is
the current task), ``execution()`` and ``env()``. They read from an
:class:`ExprContext`, which the engine builds; nothing here touches a
database.

Every evaluation is bounded by the context's :class:`Limits`: a wall-clock
budget per expression, YAQL's iterator and memory quotas, Jinja's sandbox
with a shorter ``range()`` and size checks before ``*``, ``**`` and ``%``,
and a result that must be JSON within the field size limit.
"""

from __future__ import annotations

import collections.abc  # noqa: F401  yaql 3.2 uses collections.abc without importing it
import contextvars
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

from workflows.lang.budget import OutOfTime, run_within
from workflows.lang.limits import DEFAULT, Limits
from workflows.lang.values import to_json

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
    limits: Limits = DEFAULT
    # tasks(state=None, flat=False): the task views of the execution.
    tasks_lookup: Callable[..., list] = lambda state=None, flat=False: []
    # What global(name) reads: the execution's context (vars, global publishes).
    global_data: dict | None = None


def _out_of_time(limits: Limits) -> str:
    return f"took longer than {limits.expression_seconds:g} s (the expression time limit)"


def _checked(result: Any, limits: Limits) -> Any:
    """The result as plain JSON; NotJson says why it is not."""
    return to_json(result, max_depth=limits.max_depth, max_bytes=limits.field_size_bytes, root="the result")


# --- YAQL -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _yaql_engine(limit_iterators: int, memory_quota: int):
    return factory.YaqlFactory().create(
        options={
            "yaql.convertOutputData": True,
            "yaql.limitIterators": limit_iterators,
            "yaql.memoryQuota": memory_quota,
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
def _yaql_parse(expr: str, limits: Limits = DEFAULT):
    return _yaql_engine(limits.yaql_limit_iterators, limits.yaql_memory_quota)(expr)


def _yaql_eval(expr: str, ctx: ExprContext) -> Any:
    limits = ctx.limits
    try:
        parsed = _yaql_parse(expr.strip(), limits)
    except yaql_exc.YaqlException as exc:
        raise ExpressionError(str(exc)) from exc
    context = _YAQL_ROOT.create_child_context()
    context["$"] = ctx.data
    context["__gust"] = ctx

    def fail(error) -> ExpressionError:
        return ExpressionError(f"Can not evaluate YAQL expression [expression={expr.strip()}, error={error}]")

    try:
        return _checked(run_within(limits.expression_seconds, lambda: parsed.evaluate(context=context)), limits)
    except OutOfTime:
        raise fail(_out_of_time(limits)) from None
    except KeyError as exc:
        raise fail(f"key {exc} not found") from exc
    except Exception as exc:  # yaql raises many kinds; all mean "this expression failed"
        raise fail(exc) from exc


# --- Jinja ------------------------------------------------------------------

# The limits of the evaluation in progress, for the sandbox's operator checks.
_CURRENT_LIMITS: contextvars.ContextVar[Limits] = contextvars.ContextVar("gust_limits", default=DEFAULT)
_PRINTF_WIDTH = re.compile(r"%[-+ #0]*(\d+)(?:\.(\d+))?")


class _TooBig(Exception):
    pass


class _GustSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus a size check before the operators that build a
    large value in one C call (``'a' * 10**9``), where no time budget helps."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        limit = _CURRENT_LIMITS.get().field_size_bytes
        if limit is not None:
            _check_binop(operator, left, right, limit)
        return super().call_binop(context, operator, left, right)


def _check_binop(operator: str, left: Any, right: Any, limit: int) -> None:
    too_big = _TooBig(f"the result of '{operator}' would be larger than the size limit of {limit // 1024} KB")
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > limit:
                raise too_big
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and left.bit_length() * right > limit * 8:
            raise too_big
    elif operator == "%" and isinstance(left, str):
        widths = [int(w or 0) for pair in _PRINTF_WIDTH.findall(left) for w in pair]
        args = right if isinstance(right, tuple) else (right,)
        stars = [a for a in args if isinstance(a, int)] if "*" in left else []
        if any(w > limit for w in widths + stars):
            raise too_big


_JINJA = _GustSandbox(undefined=jinja2.ChainableUndefined, autoescape=False)


@lru_cache(maxsize=4096)
def _jinja_expression(expr: str):
    return _JINJA.compile_expression(expr.strip(), undefined_to_none=True)


@lru_cache(maxsize=4096)
def _jinja_template(text: str):
    return _JINJA.from_string(text)


def _capped_range(limit: int):
    def range_(*args):
        r = range(*args)
        if len(r) > limit:
            raise OverflowError(f"range() of {len(r)} items is longer than {limit} (the Jinja range limit)")
        return r

    return range_


def _jinja_vars(ctx: ExprContext) -> dict:
    return {
        "_": ctx.data,
        "task": ctx.task_lookup,
        "execution": lambda: ctx.execution,
        "env": lambda: ctx.env,
        "range": _capped_range(ctx.limits.jinja_max_range),
    }


def _bounded(ctx: ExprContext, fn: Callable[[], Any]) -> Any:
    """``fn()`` within the time budget, with the limits the sandbox checks."""
    token = _CURRENT_LIMITS.set(ctx.limits)
    try:
        return run_within(ctx.limits.expression_seconds, fn)
    finally:
        _CURRENT_LIMITS.reset(token)


def _jinja_eval(expr: str, ctx: ExprContext) -> Any:
    try:
        compiled = _jinja_expression(expr)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"Jinja syntax error: {exc.message}") from exc

    def fail(error) -> ExpressionError:
        return ExpressionError(f"Can not evaluate Jinja expression [expression={expr.strip()}, error={error}]")

    try:
        return _checked(_bounded(ctx, lambda: compiled(**_jinja_vars(ctx))), ctx.limits)
    except OutOfTime:
        raise fail(_out_of_time(ctx.limits)) from None
    except Exception as exc:
        raise fail(exc) from exc


def _render_bounded(template, ctx: ExprContext) -> str:
    # generate() rather than render(): a loop that emits too much text stops
    # at the size limit instead of after building all of it.
    limit = ctx.limits.field_size_bytes
    parts, size = [], 0
    for chunk in template.generate(**_jinja_vars(ctx)):
        size += len(chunk)
        if limit is not None and size > limit:
            raise _TooBig(f"the text is larger than the size limit of {limit // 1024} KB")
        parts.append(chunk)
    return "".join(parts)


def _jinja_render(text: str, ctx: ExprContext) -> str:
    try:
        template = _jinja_template(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"Jinja syntax error: {exc.message}") from exc

    def fail(error) -> ExpressionError:
        return ExpressionError(f"Can not render Jinja template [template={text}, error={error}]")

    try:
        return _bounded(ctx, lambda: _render_bounded(template, ctx))
    except OutOfTime:
        raise fail(_out_of_time(ctx.limits)) from None
    except Exception as exc:
        raise fail(exc) from exc


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
        limit = ctx.limits.field_size_bytes
        if limit is not None and len(text) > limit:
            raise ExpressionError(f"The text of {stripped[:80]!r} is larger than the size limit of {limit // 1024} KB")
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
        return {_key(evaluate(k, ctx), k): evaluate(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, ctx) for v in value]
    return value


def _key(key: Any, written: Any) -> Any:
    """A mapping key that was an expression must still be a key JSON can hold."""
    if isinstance(key, (dict, list, set)) or key is None and written is not None:
        raise ExpressionError(f"The key {str(written)[:80]!r} evaluated to {type(key).__name__}; "
                              "a mapping key must be a string or a number")
    return key


def syntax_errors(value: Any) -> list[str]:
    """Every syntax error in the expressions inside ``value``, without evaluating."""
    errors: list[str] = []
    if isinstance(value, str):
        for m in YAQL_RE.finditer(value):
            try:
                _yaql_parse(m.group(1).strip(), DEFAULT)
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
