"""The built-in actions: what they take, and how each one runs.

``kind`` decides where an action runs:

- ``local``: pure and instant (``std.noop``, ``std.echo``, ``std.fail``); the
  engine computes the result in the same step, no queue hop.
- ``worker``: does I/O (``std.http``, ``std.sleep``); a django-q2 worker runs
  it after the transaction that started it commits.
- ``async``: started, then left RUNNING until a result arrives through the
  API (``std.async_noop`` starts locally; ``std.mistral_http`` sends its
  request from a worker). Mistral calls these ``is_sync = False``.

This module has no Django import; the I/O implementations live in
``workflows.action_impl`` and are named here by dotted path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

REQUIRED = object()


class ActionFailed(Exception):
    """Raised by an action implementation to end its execution in ERROR."""

    def __init__(self, error: Any):
        super().__init__(error if isinstance(error, str) else json.dumps(error))
        self.error = error


@dataclass(frozen=True)
class ActionDef:
    name: str
    kind: str  # "local" | "worker" | "async"
    params: tuple[tuple[str, Any], ...]
    description: str
    local: Callable[[dict], Any] | None = None
    impl: str | None = None  # dotted path of the worker implementation
    dispatch: bool = field(default=False)  # async actions that need a worker to start
    # An async action that ends itself (an approval's expiry) has no deadline
    # of its own; any other RUNNING action gets one (GUST["ASYNC_ACTION_TIMEOUT"]).
    waits_forever: bool = False
    # Checks an evaluated input the parameter list can not (pure): the
    # problems, each a sentence; the action then fails in the step that
    # started it, before anything outside the engine sees it.
    validate: Callable[[dict], list[str]] | None = None

    @property
    def is_sync(self) -> bool:
        return self.kind != "async"

    @property
    def needs_worker(self) -> bool:
        return self.kind == "worker" or self.dispatch

    def signature(self) -> str:
        """Mistral's ``input`` column: ``output, delay=0``."""
        parts = []
        for name, default in self.params:
            parts.append(name if default is REQUIRED else f"{name}={json.dumps(default)}")
        return ", ".join(parts)

    def check_input(self, given: dict) -> list[str]:
        names = {n for n, _ in self.params}
        errors = [f"unexpected parameter '{k}'" for k in given if k not in names]
        errors += [f"missing required parameter '{n}'" for n, d in self.params if d is REQUIRED and n not in given]
        for name, allowed in CHOICES.items():
            value = given.get(name)
            if name in names and value is not None and not _is_expression(value) and value not in allowed:
                errors.append(f"parameter '{name}' must be {' | '.join(allowed)}, not {value!r}")
        return errors

    def with_defaults(self, given: dict) -> dict:
        out = {n: d for n, d in self.params if d is not REQUIRED}
        out.update(given)
        return out


class ActionRaised(Exception):
    """An action raised an error rather than returning one: Mistral's
    executor reports it with the action's class label and execution id."""

    def __init__(self, label: str, msg: str):
        super().__init__(msg)
        self.label, self.msg = label, msg


def _fail(inp: dict) -> Any:
    if inp.get("error_data"):
        raise ActionFailed(inp["error_data"])
    raise ActionRaised("Fail action", "Fail action expected exception.")


_HTTP_PARAMS = (
    ("url", REQUIRED),
    ("method", "GET"),
    ("params", None),
    ("body", None),
    ("json", None),
    ("headers", None),
    ("cookies", None),
    ("auth", None),
    ("timeout", None),
    ("allow_redirects", None),
    ("proxies", None),
    ("verify", None),
)

# Parameters with a fixed set of values, checked at upload when written
# literally; apps add theirs with add_params (the tracker: ``tracking``).
CHOICES: dict[str, tuple[str, ...]] = {}


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and ("<%" in value or "{{" in value)


# gust.http_job starts a job, so it POSTs unless told otherwise.
_JOB_PARAMS = tuple((n, "POST" if n == "method" else d) for n, d in _HTTP_PARAMS)


BUILTIN: dict[str, ActionDef] = {
    a.name: a
    for a in (
        ActionDef("std.noop", "local", (), "Does nothing; the result is null.", local=lambda i: None),
        ActionDef(
            "std.echo",
            "local",
            (("output", REQUIRED), ("delay", 0)),
            "Returns its 'output' input as the result.",
            local=lambda i: i["output"],
        ),
        ActionDef(
            "std.fail",
            "local",
            (("error_data", None),),
            "Always fails, with 'error_data' as the error.",
            local=_fail,
        ),
        ActionDef(
            "std.async_noop",
            "async",
            (),
            "Asynchronous no-operation: stays RUNNING until completed through the API.",
        ),
        ActionDef(
            "std.http",
            "worker",
            _HTTP_PARAMS,
            "Sends an HTTP request; the result holds status, headers and content.",
            impl="workflows.action_impl.http",
        ),
        ActionDef(
            "std.mistral_http",
            "async",
            _HTTP_PARAMS,
            "Sends an HTTP request with the Mistral-* headers and waits for the "
            "receiver to complete the action through the API.",
            impl="workflows.action_impl.mistral_http",
            dispatch=True,
        ),
        ActionDef(
            "gust.http_job",
            "async",
            _JOB_PARAMS,
            "Starts a job with an HTTP request (default POST) carrying the Mistral-* and "
            "Gust-Callback-URL headers; the result arrives by callback, by polling "
            "'status_url' (or the status_url the job's response names), or both.",
            impl="workflows.action_impl.http_job",
            dispatch=True,
        ),
        ActionDef(
            "std.sleep",
            "worker",
            (("seconds", REQUIRED),),
            "Sleeps for 'seconds' in a worker; the result is null.",
            impl="workflows.action_impl.sleep",
        ),
    )
}


_REGISTERED: dict[str, ActionDef] = {}


def register(adef: ActionDef) -> None:
    """An app adds its own action (from its ``AppConfig.ready()``), so the
    engine's table names no other app's action. Registering the same name
    twice with another definition is a bug."""
    known = BUILTIN.get(adef.name) or _REGISTERED.get(adef.name)
    if known is not None and known != adef:
        raise ValueError(f"action {adef.name} is already registered")
    _REGISTERED[adef.name] = adef


def add_params(
    names: tuple[str, ...], params: tuple[tuple[str, Any], ...], choices: dict[str, tuple[str, ...]] | None = None
) -> None:
    """An app adds parameters to actions it serves (the tracker adds
    ``tracking``, ``status_url``, ... to the async HTTP actions it polls).
    Adding the same ones again is a no-op."""
    for name in names:
        table = BUILTIN if name in BUILTIN else _REGISTERED
        adef = table[name]
        new = tuple(p for p in params if p[0] not in {n for n, _ in adef.params})
        table[name] = replace(adef, params=adef.params + new)
    CHOICES.update(choices or {})


def get(name: str) -> ActionDef | None:
    return BUILTIN.get(name) or _REGISTERED.get(name)


def every() -> dict[str, ActionDef]:
    """The built-in and registered actions by name."""
    return {**BUILTIN, **_REGISTERED}


# --- inline input: ``std.echo output=<% $.x %> delay=1`` ---------------------

_INLINE_RE = re.compile(
    r"""([\w-]+)=(<%.*?%>|{{.*?}}|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\[.*?\]|\{.*?\}|\S+)""",
    re.DOTALL,
)


def _inline_value(raw: str) -> Any:
    if raw[:1] in "\"'" and raw[-1:] == raw[:1]:
        return raw[1:-1]
    if raw.startswith(("<%", "{{")):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # nested too deep for json: keep the text
        return raw


# The call form Mistral also reads: ``fail(msg='stopped', code=1)``.
_CALL_FORM = re.compile(r"^([\w.-]+)\s*\((.*)\)$", re.DOTALL)
_CALL_ARG_RE = re.compile(
    r"""([\w-]+)=(<%.*?%>|{{.*?}}|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\[.*?\]|\{.*?\}|[^\s,]+)""",
    re.DOTALL,
)


def parse_action_line(line: str) -> tuple[str, dict, str | None]:
    """Split ``name k=v k2=v2`` (or ``name(k=v, k2=v2)``) into (name, {k: v}, error or None)."""
    line = line.strip()
    call = _CALL_FORM.match(line)
    if call:
        name, rest, pattern, separators = call.group(1), call.group(2).strip(), _CALL_ARG_RE, " \t\n,"
    else:
        name, _, rest = line.partition(" ")
        rest, pattern, separators = rest.strip(), _INLINE_RE, " \t\n"
    params: dict = {}
    pos = 0
    while pos < len(rest):
        m = pattern.match(rest, pos)
        if not m:
            return name, params, f"can not parse action parameters near '{rest[pos:]}'"
        params[m.group(1)] = _inline_value(m.group(2))
        pos = m.end()
        while pos < len(rest) and rest[pos] in separators:
            pos += 1
    return name, params, None
