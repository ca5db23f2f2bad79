"""Mistral v2 workflow definitions: parse, validate in two passes, build specs.

Pass one checks the shape against a JSON Schema; pass two checks meaning:
unknown tasks in transitions, a workflow with no start task, bad ``join``
values, unknown actions and expression syntax errors. Every error carries
its path (``my_wf.tasks.t2.on-success[0]: unknown task 't3'``) and all of
them are returned together, so an author fixes a file in one round.

No Django import: the API, the dashboard and the engine all use this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jsonschema
import yaml

from core import actions
from core.lang import expressions
from core.lang.limits import DEFAULT, Limits
from core.lang.values import NotJson, to_json

ENGINE_COMMANDS = frozenset({"fail", "succeed", "pause", "noop"})
# ``var in <% $.list %>`` or ``var in [1, 2]``, as Mistral's WITH_ITEMS_PTRN.
WITH_ITEMS_RE = re.compile(r"\s*([\w\-]+)\s*in\s*(\[.+\]|<%.*%>|\{\{.*\}\}|\{%.*%\})", re.S)
CLAUSES = ("on-success", "on-error", "on-complete", "on-skip")


class DefinitionError(Exception):
    """The definition is invalid; ``errors`` lists ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], prefix: str = "Invalid DSL"):
        self.errors = errors
        self.prefix = prefix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        lines = [f"{p}: {m}" if p else m for p, m in self.errors]
        return f"{self.prefix}: " + "; ".join(lines)

    def as_list(self) -> list[dict]:
        return [{"path": p, "message": m} for p, m in self.errors]


# --- pass one: schema --------------------------------------------------------

_EXPR_OR = lambda t: {"anyOf": [{"type": "string"}, t]}  # noqa: E731
_TRANSITION_ITEM = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "object", "minProperties": 1, "maxProperties": 1},
    ]
}
_SIMPLE_TRANSITIONS = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": _TRANSITION_ITEM}]}
_NONEMPTY_DICT = {"type": "object", "minProperties": 1}
_PUBLISH_SCOPES = {
    "type": "object",
    "properties": {"branch": _NONEMPTY_DICT, "global": _NONEMPTY_DICT, "atomic": _NONEMPTY_DICT},
    "additionalProperties": False,
    "minProperties": 1,
}
# Mistral's advanced clause form: ``on-success: {publish: {branch: .., global: ..}, next: [...]}``.
_TRANSITIONS = {
    "anyOf": [
        _SIMPLE_TRANSITIONS,
        {
            "type": "object",
            "properties": {"publish": _PUBLISH_SCOPES, "next": _SIMPLE_TRANSITIONS},
            "additionalProperties": False,
        },
    ]
}
_EXPR = {"type": "string", "pattern": r"^\s*(<%.*%>|{{.*}})\s*$"}
_EXPR_OR_COUNT = {"anyOf": [_EXPR, {"type": "integer", "minimum": 0}]}
_EXPR_OR_SECONDS = {"anyOf": [_EXPR, {"type": "number", "minimum": 0}]}
_EXPR_OR_BOOL = {"anyOf": [_EXPR, {"type": "boolean"}]}
RETRY_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "count": _EXPR_OR_COUNT,
                "delay": _EXPR_OR_SECONDS,
                "break-on": {"type": "string"},
                "continue-on": {"type": "string"},
                # Gust extensions: each delay is the previous one times
                # ``backoff``, at most ``max-delay``, plus up to ``jitter``
                # (a fraction of it) at random.
                "backoff": {"type": "number", "minimum": 1},
                "max-delay": _EXPR_OR_SECONDS,
                "jitter": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["count", "delay"],
            "additionalProperties": False,
        },
        {"type": "string", "minLength": 1},  # the one-line form: "count=3 delay=1"
    ]
}
POLICY_SCHEMA = {
    "retry": RETRY_SCHEMA,
    "wait-before": _EXPR_OR_SECONDS,
    "wait-after": _EXPR_OR_SECONDS,
    "timeout": _EXPR_OR_SECONDS,
    "pause-before": _EXPR_OR_BOOL,
    "concurrency": _EXPR_OR_COUNT,
    "fail-on": _EXPR_OR_BOOL,
    "safe-rerun": _EXPR_OR_BOOL,
}
# Mistral's: one name, or a non-empty list of distinct names.
_REQUIRES = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True},
    ]
}
TASK_DEFAULTS_SCHEMA = {
    "type": "object",
    "properties": {
        **POLICY_SCHEMA,
        **{clause: _TRANSITIONS for clause in CLAUSES},
        "requires": _REQUIRES,
    },
    "additionalProperties": False,
}

TASK_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "action": {"type": "string", "minLength": 1},
        "workflow": {"type": "string", "minLength": 1},
        # Mistral's executor routing; Gust's workers form one pool, so it is
        # checked (an expression's syntax) and otherwise has no effect.
        "target": {"type": "string", "minLength": 1},
        "with-items": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
            ]
        },
        "input": _EXPR_OR({"type": "object"}),
        "publish": {"type": "object"},
        "publish-on-error": {"type": "object"},
        "publish-on-skip": {"type": "object"},
        **{clause: _TRANSITIONS for clause in CLAUSES},
        "join": {"anyOf": [{"enum": ["all", "one"]}, {"type": "integer", "minimum": 1}]},
        "requires": _REQUIRES,
        "keep-result": _EXPR_OR({"type": "boolean"}),
        "tags": {"type": "array", "items": {"type": "string"}},
        **POLICY_SCHEMA,
    },
    "additionalProperties": False,
}

# The workflow level as Mistral's WorkflowSpec has it: sections that are
# present must not be empty, output and vars are mappings.
WORKFLOW_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"enum": ["direct", "reverse"]},
        "description": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True},
        "input": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "object", "minProperties": 1, "maxProperties": 1},
                ]
            },
        },
        "output": _NONEMPTY_DICT,
        "output-on-error": _NONEMPTY_DICT,
        "vars": _NONEMPTY_DICT,
        "task-defaults": TASK_DEFAULTS_SCHEMA,
        "tasks": {"type": "object", "minProperties": 1, "additionalProperties": TASK_SCHEMA},
        "name": {"type": "string"},
        "version": {},
    },
    "required": ["tasks"],
    "additionalProperties": False,
}

_VALIDATOR = jsonschema.Draft202012Validator(WORKFLOW_SCHEMA)


def _path(base: str, parts) -> str:
    out = base
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_errors(base: str, wf: Any, validator: jsonschema.protocols.Validator = _VALIDATOR) -> list[tuple[str, str]]:
    """``wf``'s errors against ``validator``'s schema (a workflow's by default), each with its path."""
    errors = []
    for err in sorted(validator.iter_errors(wf), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for key in extra:
                errors.append((_path(base, list(err.absolute_path) + [key]), "unknown keyword"))
            continue
        if err.validator == "anyOf" and err.context:
            best = jsonschema.exceptions.best_match(err.context)
            msg = best.message
        elif err.validator in ("minProperties", "minItems") and not err.instance:
            msg = "must not be empty"
        else:
            msg = err.message
        errors.append((_path(base, err.absolute_path), msg))
    return errors


# --- specs ------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    target: str
    condition: Any = None  # an expression string, or None for "always"
    params: dict = field(default_factory=dict)  # engine command parameters (msg)

    @property
    def is_command(self) -> bool:
        return self.target in ENGINE_COMMANDS


@dataclass(frozen=True)
class Retry:
    """``retry``: each value a number or an expression (break-on and
    continue-on are always expressions); evaluated when the task ends."""

    count: Any
    delay: Any
    break_on: Any = None
    continue_on: Any = None
    backoff: float = 1.0
    max_delay: Any = None
    jitter: float = 0.0


@dataclass(frozen=True)
class Policies:
    """A task's policies after ``task-defaults`` were applied: each one is
    the task's own when it sets it, else the default, as Mistral builds them."""

    retry: Retry | None = None
    wait_before: Any = 0
    wait_after: Any = 0
    timeout: Any = 0
    pause_before: Any = False
    concurrency: Any = 0
    fail_on: Any = False
    safe_rerun: Any = False


@dataclass(frozen=True)
class Publish:
    """What a task publishes when it ends in one state: ``branch`` variables
    go to the task's outbound context, ``global`` ones to the execution's
    context. ``atomic`` is accepted as Mistral 23 accepts it (and, like it,
    not applied)."""

    branch: dict = field(default_factory=dict)
    global_: dict = field(default_factory=dict)
    atomic: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.branch or self.global_ or self.atomic)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    action: str  # a name, or an expression that gives one
    input: Any  # a mapping, or an expression that gives one
    publish: dict
    publish_on_error: dict
    on_success: tuple[Transition, ...]
    on_error: tuple[Transition, ...]
    on_complete: tuple[Transition, ...]
    join: int | str | None
    keep_result: Any
    description: str = ""
    on_skip: tuple[Transition, ...] = ()
    publish_on_skip: dict = field(default_factory=dict)
    clause_publish: dict = field(default_factory=dict)  # clause -> Publish, the advanced form
    policies: Policies = Policies()
    # ``workflow:`` instead of ``action:``: a sub-workflow's name, or an expression giving one
    workflow: str | None = None
    # ``with-items``: (variable, list or expression) pairs, zipped
    with_items: tuple[tuple[str, Any], ...] = ()
    requires: tuple[str, ...] = ()  # a reverse workflow's: the tasks that must succeed first
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def action_is_expression(self) -> bool:
        return expressions.has_expression(self.action)

    def transitions(self) -> list[tuple[str, int, Transition]]:
        return [
            (clause, i, t)
            for clause, ts in (
                ("on-success", self.on_success),
                ("on-error", self.on_error),
                ("on-complete", self.on_complete),
                ("on-skip", self.on_skip),
            )
            for i, t in enumerate(ts)
        ]

    def publish_for(self, state: str) -> Publish:
        """What to publish when the task ends in ``state``, merged as
        Mistral's DirectWorkflowTaskSpec.get_publish does: the task's
        ``publish``/``publish-on-error``/``publish-on-skip`` as branch
        variables, then ``on-complete``'s publish over it, then that merged
        into the publish of the clause of the state (the merged values win)."""
        base = {"SUCCESS": self.publish, "ERROR": self.publish_on_error, "SKIPPED": self.publish_on_skip}.get(state)
        spec = Publish(branch=dict(base)) if base else None
        complete = self.clause_publish.get("on-complete")
        if complete:
            spec = _merge_publish(spec, complete) if spec else complete
        clause = {"SUCCESS": "on-success", "ERROR": "on-error", "SKIPPED": "on-skip"}.get(state)
        own = self.clause_publish.get(clause) if clause else None
        if own:
            return _merge_publish(own, spec) if spec else own
        return spec or Publish()


def _merge_publish(left: Publish, right: Publish) -> Publish:
    return Publish(
        branch=merge_dicts(left.branch, right.branch),
        global_=merge_dicts(left.global_, right.global_),
        atomic=merge_dicts(left.atomic, right.atomic),
    )


def merge_dicts(left: dict, right: dict) -> dict:
    """A new dict: ``right`` merged into ``left`` recursively, ``right``
    winning where both hold a value that is not a mapping (Mistral's
    utils.merge_dicts with overwrite)."""
    out = dict(left)
    for key, value in right.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    tasks: dict[str, TaskSpec]
    input: tuple[tuple[str, Any], ...] = ()  # (name, default or actions.REQUIRED)
    output: Any = None
    output_on_error: Any = None
    vars: dict = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def inbound(self) -> dict[str, list[str]]:
        """Task name -> names of the tasks with a transition to it."""
        result: dict[str, list[str]] = {n: [] for n in self.tasks}
        for t in self.tasks.values():
            for _, _, tr in t.transitions():
                if tr.target in result and t.name not in result[tr.target]:
                    result[tr.target].append(t.name)
        return result

    @cached_property
    def inbound_index(self) -> dict[str, dict[str, int]]:
        """Task name -> {inbound task name: its position in ``inbound``}: a
        join's bit for each task that leads to it."""
        return {name: {n: i for i, n in enumerate(names)} for name, names in self.inbound.items()}

    @cached_property
    def calls_workflows(self) -> bool:
        """Some task runs a sub-workflow (``workflow:``)."""
        return any(t.workflow is not None for t in self.tasks.values())

    @cached_property
    def start_tasks(self) -> list[str]:
        inbound = self.inbound
        return [n for n in self.tasks if not inbound[n]]

    @property
    def reverse(self) -> bool:
        return self.raw.get("type") == "reverse"

    @property
    def kind_name(self) -> str:
        """Mistral's class name for the workflow's type, as its messages show it."""
        return "ReverseWorkflowSpec" if self.raw.get("type") == "reverse" else "DirectWorkflowSpec"

    def input_signature(self) -> str:
        """Mistral's ``input`` string: ``name="world", count``."""
        return ", ".join(n if d is actions.REQUIRED else f"{n}={json.dumps(d)}" for n, d in self.input)

    def interface(self) -> dict:
        return {
            "input": [n if d is actions.REQUIRED else {n: d} for n, d in self.input],
            "output": list(self.output) if isinstance(self.output, dict) else [],
        }


def _clause_next(value):
    """The transitions of a clause in either form: a name, a list, or the
    advanced ``{publish: ..., next: ...}`` mapping."""
    if isinstance(value, dict):
        return value.get("next")
    return value


def _clause_publish(value) -> Publish | None:
    if not isinstance(value, dict) or not value.get("publish"):
        return None
    pub = value["publish"]
    return Publish(branch=pub.get("branch") or {}, global_=pub.get("global") or {}, atomic=pub.get("atomic") or {})


def _parse_transitions(value) -> tuple[Transition, ...]:
    value = _clause_next(value)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    out = []
    for item in items:
        if isinstance(item, dict):
            ((target, cond),) = item.items()
        else:
            target, cond = item, None
        name, params, _ = actions.parse_action_line(str(target))
        out.append(Transition(target=name, condition=cond, params=params))
    return tuple(out)


def parse_input_params(items) -> tuple[tuple[str, Any], ...]:
    out = []
    for item in items or ():
        if isinstance(item, dict):
            ((name, default),) = item.items()
            out.append((name, default))
        else:
            out.append((item, actions.REQUIRED))
    return tuple(out)


def _task_action(raw: dict) -> tuple[str, Any, str | None]:
    """The action (or sub-workflow) name, its input, and what is wrong with its line."""
    line = raw.get("action") or raw.get("workflow") or "std.noop"
    given = raw.get("input")
    if expressions.has_expression(line.split(" ", 1)[0]) or expressions.ANY_EXPR_RE.fullmatch(line.strip()):
        # ``action: <% $.name %>``: the name is known when the task runs.
        return line.strip(), given if given is not None else {}, None
    name, inline, err = actions.parse_action_line(line)
    if isinstance(given, str):  # ``input: <% $.params %>``
        return name, given, err
    params = dict(inline)
    params.update(given or {})
    return name, params, err


def _names(value) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def for_target(spec: WorkflowSpec, task_name: Any) -> WorkflowSpec:
    """A reverse workflow as the engine runs it for ``params.task_name``:
    the target and the tasks it requires (transitively), each required task
    leading to the tasks that require it (they start once all their
    required tasks succeeded), as Mistral's ReverseWorkflowController."""
    if not isinstance(task_name, str) or task_name not in spec.tasks:
        raise DefinitionError([("params.task_name", f"Invalid task name [wf_spec={spec.name}, task_name={task_name}]")])
    needed: list[str] = []
    todo = [task_name]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.append(name)
            todo += [r for r in spec.tasks[name].requires if r in spec.tasks]
    order = [n for n in spec.tasks if n in needed]
    leads = {n: tuple(Transition(t) for t in order if n in spec.tasks[t].requires) for n in order}
    tasks = {
        n: dataclasses.replace(spec.tasks[n], on_success=leads[n], on_error=(), on_complete=(), on_skip=())
        for n in order
    }
    return dataclasses.replace(spec, tasks=tasks)


def with_items_of(raw) -> tuple[tuple[tuple[str, Any], ...], list[str]]:
    """``with-items`` as (variable, list or expression) pairs, and the
    problems of its text, as Mistral's TaskSpec reads it."""
    if raw is None:
        return (), []
    out, problems = [], []
    for item in [raw] if isinstance(raw, str) else raw:
        m = WITH_ITEMS_RE.match(item) if isinstance(item, str) else None
        if not m:
            problems.append(
                f"Wrong format of 'with-items' property. Please use format "
                f"'var in {{[some, list] | <% $.array %> }}': {item!r}"
            )
            continue
        var, array = m.group(1), m.group(2).strip()
        if array.startswith("["):
            try:
                array = json.loads(array)
            except ValueError as exc:
                problems.append(f"Invalid array in 'with-items' clause: {array}, error: {exc}")
                continue
        out.append((var, array))
    return tuple(out), problems


def _retry(value) -> Retry | None:
    if not value:
        return None
    if isinstance(value, str):
        _, value, _ = actions.parse_action_line("retry " + value)
    return Retry(
        count=value.get("count", 0),
        delay=value.get("delay", 0),
        break_on=value.get("break-on"),
        continue_on=value.get("continue-on"),
        backoff=value.get("backoff", 1.0),
        max_delay=value.get("max-delay"),
        jitter=value.get("jitter", 0.0),
    )


_POLICY_FIELDS = {
    "wait-before": "wait_before",
    "wait-after": "wait_after",
    "timeout": "timeout",
    "pause-before": "pause_before",
    "concurrency": "concurrency",
    "fail-on": "fail_on",
}


def _policies(task: dict, defaults: dict) -> Policies:
    """Each policy from the task when it sets one (an expression, or a value
    that turns it on), else from ``task-defaults``, as Mistral's
    construct_policies_list does; ``safe-rerun`` from the task unless unset."""
    values = {}
    for key, attr in _POLICY_FIELDS.items():
        own = task.get(key)
        values[attr] = own if own not in (None, 0, False) else defaults.get(key, getattr(Policies, attr))
    retry = _retry(task.get("retry")) or _retry(defaults.get("retry"))
    safe = task.get("safe-rerun")
    values["safe_rerun"] = safe if safe is not None else defaults.get("safe-rerun", False)
    return Policies(retry=retry, **values)


def _clause(task_name: str, task: dict, defaults: dict, clause: str) -> tuple[Transition, ...]:
    """The task's own transitions of ``clause``, or when it has none those of
    ``task-defaults`` without the ones that lead to the task itself."""
    own = _parse_transitions(task.get(clause))
    if own:
        return own
    return tuple(t for t in _parse_transitions(defaults.get(clause)) if t.target != task_name)


def build_workflow(name: str, raw: dict) -> WorkflowSpec:
    """Build a spec from an already validated workflow mapping."""
    tasks = {}
    defaults = raw.get("task-defaults") or {}
    for tname, traw in raw["tasks"].items():
        action, params, _ = _task_action(traw)
        tasks[tname] = TaskSpec(
            name=tname,
            action=action,
            input=params,
            publish=traw.get("publish") or {},
            publish_on_error=traw.get("publish-on-error") or {},
            publish_on_skip=traw.get("publish-on-skip") or {},
            on_success=_clause(tname, traw, defaults, "on-success"),
            on_error=_clause(tname, traw, defaults, "on-error"),
            on_complete=_clause(tname, traw, defaults, "on-complete"),
            on_skip=_clause(tname, traw, defaults, "on-skip"),
            clause_publish={c: p for c in CLAUSES if (p := _clause_publish(traw.get(c)))},
            join=traw.get("join"),
            keep_result=traw.get("keep-result", True),
            description=traw.get("description", ""),
            policies=_policies(traw, defaults),
            workflow=action if "workflow" in traw else None,
            requires=tuple(
                r
                for r in _names(traw["requires"] if "requires" in traw else defaults.get("requires"))
                if r != tname or "requires" in traw
            ),
            with_items=with_items_of(traw.get("with-items"))[0],
            raw=traw,
        )
    return WorkflowSpec(
        name=name,
        tasks=tasks,
        input=parse_input_params(raw.get("input")),
        output=raw.get("output"),
        output_on_error=raw.get("output-on-error"),
        vars=raw.get("vars") or {},
        description=raw.get("description", ""),
        tags=tuple(raw.get("tags") or ()),
        raw=raw,
    )


# --- pass two: meaning -------------------------------------------------------


def _semantic_errors(name: str, raw: dict) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    base = f"{name}.tasks"
    reverse = raw.get("type") == "reverse"
    if reverse:
        errors += _reverse_errors(base, raw)
    seen_inputs = set()
    for i, (pname, _) in enumerate(parse_input_params(raw.get("input"))):
        if pname in seen_inputs:
            errors.append((f"{name}.input[{i}]", f"input '{pname}' is declared twice"))
        seen_inputs.add(pname)
    for key in ("output", "output-on-error", "vars"):
        errors += expressions.expression_errors(raw.get(key), f"{name}.{key}")

    task_names = set(raw["tasks"])
    for tname, traw in raw["tasks"].items():
        tpath = f"{base}.{tname}"
        errors += _action_errors(tpath, traw)
        for key in ("publish", "publish-on-error", "publish-on-skip", "keep-result", "target", *POLICY_SCHEMA):
            errors += expressions.expression_errors(traw.get(key), f"{tpath}.{key}")
        errors += _clause_errors(tpath, traw, task_names)
    errors += _clause_errors(f"{name}.task-defaults", raw.get("task-defaults") or {}, task_names)
    defaults = raw.get("task-defaults") or {}
    for key in POLICY_SCHEMA:
        errors += expressions.expression_errors(defaults.get(key), f"{name}.task-defaults.{key}")
    if raw["tasks"] and not reverse:
        for tname, traw in raw["tasks"].items():
            if "requires" in traw:
                errors.append((f"{base}.{tname}.requires", "only a reverse workflow has 'requires'"))
        spec = build_workflow(name, raw)
        if not spec.start_tasks:
            errors.append((base, "no start task: every task is the target of a transition"))
        errors += _join_errors(base, spec)
    return errors


def _reverse_errors(base: str, raw: dict) -> list[tuple[str, str]]:
    """A reverse workflow's ``requires``: known tasks and no cycle; its tasks
    have no transitions (Mistral's reverse task schema has none)."""
    errors = []
    defaults = raw.get("task-defaults") or {}
    requires = {}
    for tname, traw in raw["tasks"].items():
        value = traw["requires"] if "requires" in traw else defaults.get("requires")
        requires[tname] = [r for r in _names(value) if r != tname or "requires" in traw]
        for r in requires[tname]:
            if r not in raw["tasks"]:
                errors.append((f"{base}.{tname}.requires", f"unknown task '{r}'"))
        for clause in (*CLAUSES, "join"):
            if clause in traw:
                errors.append((f"{base}.{tname}.{clause}", "not allowed in a reverse workflow (use 'requires')"))
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for r in requires.get(n, []):
            if state.get(r) == 1:
                cycle = path[path.index(r) :] + [r] if r in path else [n, r]
                errors.append((f"{base}.{n}.requires", f"a cycle in 'requires': {' -> '.join(cycle)}"))
            elif r in requires and not state.get(r):
                visit(r, path + [r])
        state[n] = 2

    for n in requires:
        if not state.get(n):
            visit(n, [n])
    return errors


def _join_errors(base: str, spec: WorkflowSpec) -> list[tuple[str, str]]:
    """Mistral's check of ``join``: a task that joins needs that many
    inbound tasks, and ``all`` or ``one`` at least one."""
    errors = []
    for tname, t in spec.tasks.items():
        if t.join is None:
            continue
        leading = len(spec.inbound[tname])
        if leading == 0:
            errors.append((f"{base}.{tname}.join", f"join: {t.join} but no task leads to '{tname}'"))
        elif isinstance(t.join, int) and t.join > leading:
            errors.append((f"{base}.{tname}.join", f"join: {t.join} but only {leading} task(s) lead to '{tname}'"))
    return errors


def _action_errors(tpath: str, traw: dict) -> list[tuple[str, str]]:
    """An action named in the text must take the input given; a name Gust
    does not know is accepted, as Mistral accepts it, and fails the task
    when it runs ("Failed to find action")."""
    errors = []
    if "action" in traw and "workflow" in traw:
        errors.append((tpath, "a task has either 'action' or 'workflow', not both"))
    key = "workflow" if "workflow" in traw and "action" not in traw else "action"
    action_name, params, err = _task_action(traw)
    if err:
        errors.append((f"{tpath}.{key}", err))
    items, problems = with_items_of(traw.get("with-items"))
    errors += [(f"{tpath}.with-items", p) for p in problems]
    errors += [e for var, array in items for e in expressions.expression_errors(array, f"{tpath}.with-items.{var}")]
    adef = actions.get(action_name) if key == "action" else None
    if adef is not None and isinstance(params, dict):
        for msg in adef.check_input(params):
            errors.append((f"{tpath}.input", f"{action_name}: {msg}"))
    errors += expressions.expression_errors(action_name, f"{tpath}.{key}")
    errors += expressions.expression_errors(params, f"{tpath}.input")
    return errors


def _clause_errors(tpath: str, traw: dict, task_names: set) -> list[tuple[str, str]]:
    errors = []
    for clause in CLAUSES:
        value = traw.get(clause)
        for i, tr in enumerate(_parse_transitions(value)):
            where = f"{tpath}.{clause}[{i}]"
            if not tr.is_command and tr.target not in task_names:
                errors.append((where, f"unknown task '{tr.target}'"))
            if tr.params and not tr.is_command:
                errors.append((where, "only engine commands take parameters"))
            errors += expressions.expression_errors(tr.condition, where)
            errors += expressions.expression_errors(tr.params, where)
        if isinstance(value, dict):
            errors += expressions.expression_errors(value.get("publish"), f"{tpath}.{clause}.publish")
    return errors


def _without_schema_errors(name: str, raw: Any, schema_errors) -> dict | None:
    """A copy of ``raw`` without the task keys that failed the schema, so the
    graph pass can still report its own errors in the same answer; None when
    the workflow's shape is too broken for a graph pass."""
    if not schema_errors:
        return raw
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        return None
    if not all(isinstance(t, dict) for t in raw["tasks"].values()):
        return None
    prefix = f"{name}.tasks."
    clean = {k: v for k, v in raw.items() if k != "tasks"}
    clean["tasks"] = {t: dict(body) for t, body in raw["tasks"].items()}
    for path, _ in schema_errors:
        if not path.startswith(prefix):
            section = path[len(name) + 1 :].split("[")[0].split(".")[0] if path.startswith(f"{name}.") else ""
            if section in ("", "tasks"):
                return None  # the tasks themselves are broken: report that alone
            clean.pop(section, None)  # a broken workflow-level section the graph pass does not need
            continue
        task, _, key = path[len(prefix) :].partition(".")
        key = key.split("[")[0].split(".")[0]
        if task in clean["tasks"] and key:
            clean["tasks"][task].pop(key, None)
        elif task in clean["tasks"]:
            return None
    return clean


# --- files -------------------------------------------------------------------


class _Refused(yaml.YAMLError):
    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.problem_mark, self.problem = mark, problem


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, bounded: nesting deeper than ``max_depth`` and
    aliases that would add more than ``yaml_alias_nodes`` values (a
    "billion laughs" document) are refused while composing, before anything
    walks the expanded tree; dates, binary data and sets, which JSON has no
    type for, are refused with their line instead of failing when stored."""

    def __init__(self, text: str, limits: Limits, unique_keys: bool = False):
        super().__init__(text)
        self.limits = limits
        self.unique_keys = unique_keys
        self._depth = 0

    def construct_mapping(self, node, deep=False):
        if self.unique_keys and isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise _Refused(key_node.start_mark, f"'{key}' is defined twice (first on line {seen[key] + 1})")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                raise _Refused(self.peek_event().start_mark, f"nested deeper than {self.limits.max_depth} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        self._check_expansion(node)
        return node

    def _check_expansion(self, root) -> None:
        """Count the values the document expands to, each node once per
        reference, and how deep the expansion nests, without building it."""
        seen: dict[int, tuple[int, int]] = {}  # node -> (values, height) of its expansion
        open_nodes: set[int] = set()
        limit, max_depth = self.limits.yaml_alias_nodes, self.limits.max_depth

        def expand(node, depth: int) -> tuple[int, int]:
            key = id(node)
            if key in open_nodes:
                raise _Refused(node.start_mark, "an alias refers to a value that contains it")
            if key not in seen:
                open_nodes.add(key)
                children = []
                if isinstance(node, yaml.SequenceNode):
                    children = node.value
                elif isinstance(node, yaml.MappingNode):
                    children = [n for pair in node.value for n in pair]
                below = [expand(child, depth + 1) for child in children]
                open_nodes.discard(key)
                seen[key] = (1 + sum(n for n, _ in below), 1 + max((h for _, h in below), default=0))
            values, height = seen[key]
            if depth + height > max_depth:
                raise _Refused(node.start_mark, f"aliases nest deeper than {max_depth} levels")
            if values - len(seen) > limit:
                raise _Refused(node.start_mark, f"aliases expand to more than {limit} values beyond those written")
            return values, height

        expand(root, 0)


def _refuse(what: str, hint: str):
    def construct(loader, node):
        shown = f" ({node.value!r})" if isinstance(node, yaml.ScalarNode) else ""
        raise _Refused(node.start_mark, f"{what}{shown} has no JSON type; {hint}")

    return construct


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _refuse("a date", "quote it to keep it as text"))
_BoundedLoader.add_constructor("tag:yaml.org,2002:binary", _refuse("!!binary data", "send it as a base64 string"))
_BoundedLoader.add_constructor("tag:yaml.org,2002:set", _refuse("a !!set", "use a list"))


def load_yaml(text: str, limits: Limits = DEFAULT, *, unique_keys: bool = False) -> Any:
    """Parse YAML into plain JSON values; raise DefinitionError with line and
    column when it is broken or over a bound, or with the path of a value
    JSON can not hold (``wf.vars.x: nan is not a JSON number``).
    ``unique_keys``: a key written twice in one mapping is an error (PyYAML,
    like Mistral, keeps the last one silently)."""
    max_bytes = limits.definition_kb * 1024
    if len(text) > max_bytes:
        raise DefinitionError(
            [("", f"the definition is larger than the limit of {limits.definition_kb} KB")],
            prefix="Definition could not be parsed",
        )
    loader = None
    try:
        loader = _BoundedLoader(text, limits, unique_keys)  # its reader already refuses control characters
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        msg = f"{where}: {problem}" if where else problem
        raise DefinitionError([("", msg)], prefix="Definition could not be parsed") from exc
    finally:
        if loader is not None:
            loader.dispose()
    try:
        return to_json(doc, max_depth=limits.max_depth, root="")
    except NotJson as exc:
        raise DefinitionError([(exc.path.lstrip("."), exc.reason)], prefix="Definition could not be parsed") from exc


_MAX_NAME = 255  # the stored name's column


def version_errors(doc: dict) -> list[tuple[str, str]]:
    """Mistral's version check: required, and 2.0 written any way a number
    can be (``2``, ``2.0``, ``'2.0'``)."""
    if "version" not in doc:
        return [("version", "'version' is a required property; use '2.0'")]
    version = doc["version"]
    try:
        supported = not isinstance(version, bool) and str(float(version)) == "2.0"
    except (TypeError, ValueError):
        supported = False
    return [] if supported else [("version", f"must be '2.0', got {version!r}")]


def name_errors(name: Any, what: str = "workflow", path: str | None = None) -> list[tuple[str, str]]:
    """The names Mistral refuses (spaces, the shape of a UUID, which the API
    would read as an id), and those too long to be stored; ``path`` is where
    the error shows (the name itself by default)."""
    if not isinstance(name, str):
        return [(str(name) if path is None else path, f"a {what} name must be a string")]
    where = name if path is None else path
    if not name:
        return [(where, f"a {what} name must not be empty")]
    if len(name) > _MAX_NAME:
        return [
            (
                name[:40] + "…" if path is None else path,
                f"a {what} name is at most {_MAX_NAME} characters, this one has {len(name)}",
            )
        ]
    if " " in name:
        return [(where, f"Name '{name}' must not contain spaces")]
    if _uuid_like(name):
        return [(where, f"a {what} name cannot be in the format of a UUID")]
    return []


def _uuid_like(text: str) -> bool:
    """oslo's is_uuid_like, which Mistral uses: any spelling uuid.UUID reads
    back to the same hex digits (with or without dashes, braces, urn:uuid:)."""
    try:
        digits = text.lower().replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
        return uuid.UUID(text).hex == digits
    except (TypeError, ValueError, AttributeError):
        return False


def _split_file(doc: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    if not isinstance(doc, dict):
        return {}, [("", "a workflow file must be a mapping with 'version' and workflows")]
    errors = version_errors(doc)
    if "tasks" in doc:  # the single-workflow short form: name, tasks, ... at the top
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            return {}, errors + [("name", "the short form needs a 'name' for its workflow")]
        body = {k: v for k, v in doc.items() if k not in ("version", "name")}
        return {name: body}, errors
    workflows = {k: v for k, v in doc.items() if k != "version"}
    if not workflows:
        errors.append(("", "no workflow in the file"))
    return workflows, errors


def parse_definition(text: str, limits: Limits = DEFAULT) -> dict[str, WorkflowSpec]:
    """Parse a file with one or more workflows; raise DefinitionError listing every error."""
    doc = load_yaml(text, limits)
    workflows, errors = _split_file(doc)
    for name, raw in workflows.items():
        bad_name = name_errors(name)
        errors += bad_name or workflow_errors(name, raw)
    if errors:
        raise DefinitionError(errors)
    return {name: build_workflow(name, raw) for name, raw in workflows.items()}


def workflow_errors(path: str, raw: Any) -> list[tuple[str, str]]:
    """Every error of one workflow mapping, both passes, each path starting
    with ``path`` (its name, or ``workflows.<name>`` inside a workbook)."""
    errors = schema_errors(path, raw)
    checkable = _without_schema_errors(path, raw, errors)
    if checkable is not None:
        errors += _semantic_errors(path, checkable)
    return errors


def workflow_text(name: str, raw: dict) -> str:
    """One workflow of a multi-workflow file as a stand-alone definition."""
    return yaml.safe_dump({"version": "2.0", name: raw}, sort_keys=False)


def checksum(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
