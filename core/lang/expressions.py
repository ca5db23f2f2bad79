"""YAQL ``<% %>`` and Jinja ``{{ }}`` expressions, as Mistral evaluates them.

A string that is exactly one expression keeps the type of its result
(``<% $.count %>`` gives an int); a string that mixes text and expressions is
rendered as text. Containers are evaluated recursively.

The functions are Mistral's (``FUNCTIONS``): ``task()``, ``tasks()``,
``execution()``, ``env()``, ``global()``, ``uuid()``, ``json_dump()``,
``json_pp()``, ``json_parse()``, ``yaml_dump()`` and ``yaml_parse()``, as YAQL
functions, Jinja functions and Jinja filters. They read from an
:class:`ExprContext`, which the engine builds; nothing here touches a
database. Jinja renders text as Mistral's does: ``trim_blocks`` and
``lstrip_blocks`` (a line holding only ``{% if %}`` disappears) and the last
newline dropped.

``syntax_errors`` finds, without evaluating, what Mistral finds at upload
(syntax) and what it finds only at run time: functions, filters and tests
that exist in neither YAQL's standard library, Jinja's nor Mistral's.

Every evaluation is bounded by the context's :class:`Limits`: a wall-clock
budget per expression, YAQL's iterator and memory quotas, Jinja's sandbox
with a shorter ``range()`` and size checks before ``*``, ``**`` and ``%``,
and a result that must be JSON within the field size limit.
"""

from __future__ import annotations

import collections.abc  # yaql 3.2 uses collections.abc without importing it
import contextvars
import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2
import yaml
import yaql
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import SandboxedEnvironment
from yaql.language import exceptions as yaql_exc
from yaql.language import expressions as yaql_nodes
from yaql.language import factory, specs, yaqltypes

from core.lang.budget import OutOfTime, run_within
from core.lang.limits import DEFAULT, Limits
from core.lang.values import to_json

YAQL_RE = re.compile(r"<%(.*?)%>", re.DOTALL)
JINJA_EXPR_RE = re.compile(r"{{(.*?)}}", re.DOTALL)
ANY_EXPR_RE = re.compile(r"<%.*?%>|{{.*?}}|{%.*?%}", re.DOTALL)
JINJA_ANY_RE = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
# What parsing an expression may raise besides its own syntax errors: Mistral
# catches the first three from yaql; a deeply nested expression exhausts
# Python's stack in Jinja's recursive parser.
_PARSE_FAILURES = (KeyError, ValueError, TypeError, RecursionError)


class ExpressionError(Exception):
    """An expression could not be parsed or evaluated."""


@dataclass
class ExprContext:
    """Everything an expression may read; the engine builds it, every field
    but ``data`` has a harmless default.

    - ``data``: ``$`` in YAQL, ``_`` in Jinja (the task's inbound context).
    - ``task_lookup(name)``: the view of the latest execution of task
      ``name`` for ``task(name)``, None when it never ran; ``name`` is None
      for ``task()``, the task being evaluated (None outside a task). As in
      Mistral a view holds ``id``, ``name``, ``spec``, ``state``,
      ``state_info``, ``result``, ``published`` (Mistral adds ``type``,
      ``workflow_execution_id``, ``created_at``, ``updated_at``).
    - ``tasks_lookup(state, flat)``: the views of this execution's task
      executions for ``tasks()``, only those in ``state`` when it is not
      None; ``flat`` leaves out the tasks whose sub-workflow ended in the
      task's own state (Mistral's flag; no effect before sub-workflows).
    - ``execution``: ``execution()``; Mistral's has ``id``, ``name``,
      ``spec``, ``input`` (defaults applied), ``params``, ``created_at``,
      ``updated_at``, ``root_execution_id``.
    - ``env``: ``env()``, the execution's environment.
    - ``global_data``: what ``global(name)`` reads, the execution's global
      scope; None means ``data``.
    - ``limits``: the bounds of every evaluation.
    """

    data: dict
    task_lookup: Callable[[str | None], dict | None] = lambda name: None
    tasks_lookup: Callable[[str | None, bool, bool], list[dict]] = lambda state, flat, recursive: []
    execution: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    global_data: dict | None = None
    limits: Limits = DEFAULT

    def __post_init__(self) -> None:
        if self.global_data is None:
            self.global_data = self.data


def _out_of_time(limits: Limits) -> str:
    return f"took longer than {limits.expression_seconds:g} s (the expression time limit)"


def _parse_failure(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "the expression is nested too deeply to parse"
    return str(exc) if isinstance(exc, yaql_exc.YaqlException) else f"Parse error: {exc}"


def _jinja_parse_failure(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"Jinja syntax error: {exc.message}"
    return f"Jinja syntax error: {_parse_failure(exc)}"


def _checked(result: Any, limits: Limits) -> Any:
    """The result as plain JSON; NotJson says why it is not."""
    return to_json(result, max_depth=limits.max_depth, max_bytes=limits.field_size_bytes, root="the result")


# --- the functions Mistral registers -----------------------------------------
#
# One plain Python function per name, taking the ExprContext first; YAQL and
# Jinja wrap the same functions below. Parameter names are Mistral's, so
# keyword arguments (``tasks(state => ERROR)``) work as they do there.


class _YamlLoader(yaml.SafeLoader):
    """Mistral's yaml_parse loader (mistral.utils.safe_yaml): ``&`` and ``*``
    start plain text instead of anchors and aliases, so a parsed string can
    not expand into a "billion laughs" value."""

    def fetch_alias(self):
        return self.fetch_plain()

    def fetch_anchor(self):
        return self.fetch_plain()


class _YamlDumper(yaml.SafeDumper):
    """Repeated values are written out again, never as anchors (Mistral's dumper)."""

    def ignore_aliases(self, data):
        return True


def _plain(value: Any) -> Any:
    """YAQL hands functions its own frozen mappings and tuples: back to JSON shapes."""
    if isinstance(value, collections.abc.Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def _task(ctx: ExprContext, task_name: str | None = None) -> Any:
    return ctx.task_lookup(task_name)


def _tasks(
    ctx: ExprContext, workflow_execution_id: Any = None, recursive: Any = False, state: Any = None, flat: Any = False
) -> Any:
    # Gust reads the tasks of the execution being evaluated (and with
    # ``recursive`` those of its sub-workflows); another id (Mistral would
    # query it, or every execution without one) has none here.
    if workflow_execution_id is not None and workflow_execution_id != ctx.execution.get("id"):
        return []
    return ctx.tasks_lookup(state, bool(flat), bool(recursive))


def _execution(ctx: ExprContext) -> Any:
    return ctx.execution


def _executions(ctx: ExprContext, *args: Any, **kwargs: Any) -> Any:
    raise ExpressionError("executions() is not available in Gust: an execution reads only its own data")


def _env(ctx: ExprContext) -> Any:
    return ctx.env


def _uuid(ctx: ExprContext | None = None) -> str:
    return str(uuid.uuid4())


def _global(ctx: ExprContext, var_name: str) -> Any:
    return (ctx.global_data or {}).get(var_name)  # never None after __post_init__


def _json_dump(ctx: ExprContext, data: Any) -> str:
    return json.dumps(_plain(data), indent=4)


def _json_pp(ctx: ExprContext, data: Any = None) -> str:
    """Mistral's json_pp (removed from Mistral in 2026, kept here for older
    workflows): json_dump with newlines inside strings shown as newlines."""
    shown = ctx.data if data is None else data
    return json.dumps(_plain(shown), indent=4).replace("\\n", "\n").replace(" \n", "\n")


def _json_parse(ctx: ExprContext, data: Any) -> Any:
    return json.loads(data)


def _yaml_dump(ctx: ExprContext, data: Any) -> str:
    return yaml.dump(_plain(data), Dumper=_YamlDumper, default_flow_style=False)


def _yaml_parse(ctx: ExprContext, data: Any) -> Any:
    return yaml.load(data, Loader=_YamlLoader)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "task": _task,
    "tasks": _tasks,
    "execution": _execution,
    "executions": _executions,
    "env": _env,
    "uuid": _uuid,
    "global": _global,
    "json_dump": _json_dump,
    "json_pp": _json_pp,
    "json_parse": _json_parse,
    "yaml_dump": _yaml_dump,
    "yaml_parse": _yaml_parse,
}


# --- YAQL -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _yaql_engine(limit_iterators: int, memory_quota: int) -> Any:
    return factory.YaqlFactory().create(
        options={
            "yaql.convertOutputData": True,
            "yaql.limitIterators": limit_iterators,
            "yaql.memoryQuota": memory_quota,
        }
    )


_YAQL_ROOT = yaql.create_context()


class _GustContext(yaqltypes.Context):
    """Injects the ExprContext (``ctx``) into a function, as yaql injects its own context."""

    __slots__ = ()

    def convert(self, value, receiver, context, function_spec, engine, *args, **kwargs):
        return context["__gust"]


def _yaql_definition(name: str, fn: Callable[..., Any]) -> Any:
    return specs.get_function_definition(
        fn, name=name, parameter_type_func=lambda arg: _GustContext() if arg == "ctx" else None
    )


for _name, _fn in FUNCTIONS.items():
    _YAQL_ROOT.register_function(_yaql_definition(_name, _fn))


@lru_cache(maxsize=4096)
def _yaql_parse(expr: str, limits: Limits = DEFAULT) -> Any:
    return _yaql_engine(limits.yaql_limit_iterators, limits.yaql_memory_quota)(expr)


def _yaql_eval(expr: str, ctx: ExprContext) -> Any:
    limits = ctx.limits
    try:
        parsed = _yaql_parse(expr.strip(), limits)
    except (yaql_exc.YaqlException, *_PARSE_FAILURES) as exc:
        raise ExpressionError(_parse_failure(exc)) from exc
    context = _YAQL_ROOT.create_child_context()
    context["$"] = ctx.data
    context["__gust"] = ctx

    def fail(error: Exception | str) -> ExpressionError:
        return ExpressionError(f"Can not evaluate YAQL expression [expression={expr.strip()}, error={error}]")

    try:
        return _checked(run_within(limits.expression_seconds, lambda: parsed.evaluate(context=context)), limits)
    except OutOfTime:
        raise fail(_out_of_time(limits)) from None
    except KeyError as exc:
        raise fail(exc) from exc  # Mistral's text: error='p'
    except Exception as exc:  # yaql raises many kinds; all mean "this expression failed"
        raise fail(exc) from exc


# --- Jinja ------------------------------------------------------------------

# The context of the evaluation in progress, for the sandbox's operator checks
# and for the filters, which belong to the environment and not to a render.
# The default is never changed in place (every evaluation sets its own context), so sharing it is safe (B039).
_CURRENT: contextvars.ContextVar[ExprContext] = contextvars.ContextVar("gust_expr_ctx", default=ExprContext(data={}))  # noqa: B039
_PRINTF_WIDTH = re.compile(r"%[-+ #0]*(\d+)(?:\.(\d+))?")


class _TooBig(Exception):
    pass


class _GustSandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus a size check before the operators that build a
    large value in one C call (``'a' * 10**9``), where no time budget helps."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        limit = _CURRENT.get().limits.field_size_bytes
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


# Mistral's whitespace handling: a block tag's line goes away whole, and the
# text's last newline is dropped (keep_trailing_newline stays off).
_JINJA = _GustSandbox(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _jinja_filter(fn: Callable[..., Any], piped_is_data: bool = False) -> Callable[..., Any]:
    """Mistral registers its functions as filters too, with the piped value in
    the place of its context (``_ | task('t1')``): ignored, except by json_pp,
    which shows it when given no argument (``_.x | json_pp``)."""

    def jinja_filter(piped, *args, **kwargs):
        if piped_is_data and not args and "data" not in kwargs:
            args = (piped,)
        return fn(_CURRENT.get(), *args, **kwargs)

    return jinja_filter


for _name, _fn in FUNCTIONS.items():
    _JINJA.filters[_name] = _jinja_filter(_fn, piped_is_data=_name == "json_pp")


@lru_cache(maxsize=4096)
def _jinja_expression(expr: str) -> Any:
    return _JINJA.compile_expression(expr.strip(), undefined_to_none=False)


@lru_cache(maxsize=4096)
def _jinja_template(text: str) -> Any:
    return _JINJA.from_string(text)


def _capped_range(limit: int) -> Callable[..., Any]:
    def range_(*args):
        r = range(*args)
        if len(r) > limit:
            raise OverflowError(f"range() of {len(r)} items is longer than {limit} (the Jinja range limit)")
        return r

    return range_


def _jinja_vars(ctx: ExprContext) -> dict:
    return {
        **{name: functools.partial(fn, ctx) for name, fn in FUNCTIONS.items()},
        "_": ctx.data,
        "range": _capped_range(ctx.limits.jinja_max_range),
    }


def _bounded(ctx: ExprContext, fn: Callable[[], Any]) -> Any:
    """``fn()`` within the time budget, with the limits the sandbox checks."""
    token = _CURRENT.set(ctx)
    try:
        return run_within(ctx.limits.expression_seconds, fn)
    finally:
        _CURRENT.reset(token)


def _jinja_eval(expr: str, ctx: ExprContext) -> Any:
    try:
        compiled = _jinja_expression(expr)
    except (jinja2.TemplateSyntaxError, *_PARSE_FAILURES) as exc:
        raise ExpressionError(_jinja_parse_failure(exc)) from exc

    def fail(error: Exception | str) -> ExpressionError:
        return ExpressionError(f"Can not evaluate Jinja expression [expression={expr.strip()}, error={error}]")

    def run():
        result = compiled(**_jinja_vars(ctx))
        str(result)  # a StrictUndefined raises when used, as in Mistral: say which name is missing
        return result

    try:
        return _checked(_bounded(ctx, run), ctx.limits)
    except OutOfTime:
        raise fail(_out_of_time(ctx.limits)) from None
    except Exception as exc:
        raise fail(exc) from exc


def _render_bounded(template: Any, ctx: ExprContext) -> str:
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
    except (jinja2.TemplateSyntaxError, *_PARSE_FAILURES) as exc:
        raise ExpressionError(_jinja_parse_failure(exc)) from exc

    def fail(error: Exception | str) -> ExpressionError:
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
    """A value inside text, as Mistral puts it there: Python's ``str()``
    (``None``, ``{'a': 1}``)."""
    return value if isinstance(value, str) else str(value)


def evaluate_string(text: str, ctx: ExprContext) -> Any:
    """One expression that is the whole string keeps its result's type;
    anything around it, a space or a block scalar's newline included, makes
    the result text, as in Mistral."""
    stripped = text.strip()
    whole = YAQL_RE.fullmatch(text)
    if whole and text.count("<%") == 1:
        return _yaql_eval(whole.group(1), ctx)
    whole = JINJA_EXPR_RE.fullmatch(text)
    if whole and text.count("{{") == 1 and "{%" not in text:
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
        raise ExpressionError(
            f"The key {str(written)[:80]!r} evaluated to {type(key).__name__}; "
            "a mapping key must be a string or a number"
        )
    return key


def _yaql_children(node: Any) -> list:
    if isinstance(node, yaql_nodes.MappingRuleExpression):
        return [node.source, node.destination]
    return list(getattr(node, "args", None) or ())


def _yaql_unknown(expr: str) -> list[str]:
    """The functions an expression calls that exist nowhere, and are not
    defined inside it with ``def(name, ...)``. Operators, indexers and the
    like are functions too, with ``#`` names; only plain calls are checked."""
    root = _yaql_parse(expr, DEFAULT)
    calls, defined, stack = [], set(), [getattr(root, "expression", root)]
    while stack:
        node = stack.pop()
        if type(node) is yaql_nodes.Function:
            calls.append(node.name)
            if node.name == "def" and node.args and isinstance(node.args[0], yaql_nodes.Constant):
                defined.add(node.args[0].value)
        stack.extend(_yaql_children(node))
    unknown = [n for n in calls if n not in defined and not _YAQL_ROOT.collect_functions(n)]
    return [f"unknown YAQL function '{n}'" for n in dict.fromkeys(reversed(unknown))]


def _jinja_unknown(template: Any) -> list[str]:
    """The filters, tests and functions a template uses that exist nowhere:
    Jinja would say so only when it renders, or compiles, that part."""
    errors = [
        f"unknown Jinja filter '{n.name}'"
        for n in template.find_all(jinja_nodes.Filter)
        if n.name not in _JINJA.filters
    ]
    errors += [
        f"unknown Jinja test '{n.name}'" for n in template.find_all(jinja_nodes.Test) if n.name not in _JINJA.tests
    ]
    local = {n.name for n in template.find_all(jinja_nodes.Name) if n.ctx != "load"}
    local |= {m.name for m in template.find_all(jinja_nodes.Macro)}
    known = local | set(_JINJA.globals) | set(FUNCTIONS) | {"range"}
    errors += [
        f"unknown Jinja function '{c.node.name}'"
        for c in template.find_all(jinja_nodes.Call)
        if isinstance(c.node, jinja_nodes.Name) and c.node.name not in known
    ]
    return list(dict.fromkeys(errors))


def _string_errors(text: str) -> list[str]:
    errors: list[str] = []
    if YAQL_RE.search(text) and JINJA_ANY_RE.search(text):
        # Mistral refuses this at upload; Gust could evaluate it, but a file
        # that uploads here and not there would not be Mistral's language.
        errors.append("mixes YAQL and Jinja expressions in one string, which Mistral does not allow")
    for m in YAQL_RE.finditer(text):
        try:
            errors += _yaql_unknown(m.group(1).strip())
        except (yaql_exc.YaqlException, *_PARSE_FAILURES) as exc:
            errors.append(_parse_failure(exc))
    if "{{" in text or "{%" in text:
        try:
            errors += _jinja_unknown(_JINJA.parse(text))
        except (jinja2.TemplateSyntaxError, *_PARSE_FAILURES) as exc:
            errors.append(_jinja_parse_failure(exc))
    return errors


def expression_errors(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every error in the expressions inside ``value`` that shows without
    evaluating: syntax, and functions, filters or tests that do not exist.
    Each comes with its path below ``value`` (``path`` + ``.key`` or ``[i]``)."""
    if isinstance(value, str):
        return [(path, msg) for msg in _string_errors(value)]
    errors: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            errors += expression_errors(k, f"{path}.{k}") + expression_errors(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            errors += expression_errors(v, f"{path}[{i}]")
    return errors


def syntax_errors(value: Any) -> list[str]:
    """The messages of ``expression_errors(value)``, without their paths."""
    return [msg for _, msg in expression_errors(value)]
