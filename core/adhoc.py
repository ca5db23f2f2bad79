"""Running ad-hoc actions, as Mistral's ``actions/adhoc.py`` does; pure.

An ad-hoc action runs its ``base`` (a built-in action, or another ad-hoc
action, chained) with ``base-input`` evaluated over its own input (defaults
filled in), and its ``output`` turns the base's result into its own.

The engine does no I/O, so it is given a :data:`Lookup`: a function from
(name, namespace) to the ad-hoc :class:`ActionSpec` stored under exactly
that name, or None (the service answers it from the database,
``workflows.books.find_action``). With it:

- :func:`find` resolves the name a task writes: inside a workbook's
  workflow ``<workbook>.<name>`` first, then the name as written; a
  built-in first at each step (Mistral's ``_get_action_descriptor``).
- :func:`plan` (for an ad-hoc action :func:`expand`) turns the action and the task's input into the
  built-in to run and its input (Mistral's ``AdHocActionDescriptor.instantiate``),
  and :func:`transform` applies the chain's ``output`` expressions to the
  base's result (``post_process_result``): the base's own first, the
  outermost action's last.

What :func:`plan` returns is stored on the action execution
(``runtime_context["adhoc"]``), so a worker runs the base without looking
anything up and the output is transformed with the definitions the action
started with, whatever changes meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from core import actions
from core.lang.expressions import ExprContext, ExpressionError, evaluate
from core.lang.limits import DEFAULT, Limits
from core.lang.workbook import ActionSpec, qualified_candidates

Lookup = Callable[[str, str], ActionSpec | None]
KEY = "adhoc"  # the action execution's runtime_context key


def run_name(name: str, runtime_context: dict | None) -> str:
    """The action that runs for an action execution: its own name, or for an
    ad-hoc action the built-in base :func:`plan` stored."""
    return (runtime_context or {}).get(KEY, {}).get("base") or name


class AdhocError(ExpressionError):
    """The ad-hoc action can not run: its task fails with this message."""


def find(
    name: str, namespace: str, workbook: str | None, lookup: Lookup | None
) -> actions.ActionDef | ActionSpec | None:
    """The action a task's ``action: name`` runs, or None when none exists.
    Ad-hoc actions are looked up in ``namespace`` only (Mistral's
    ``load_action_definition``); built-ins are in every namespace."""
    for candidate in qualified_candidates(name, workbook):
        found = actions.get(candidate) or (lookup(candidate, namespace) if lookup else None)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Plan:
    """What a task's action execution runs: ``action`` (a built-in) with
    ``run_input``. ``name`` and ``input`` are what the action execution
    shows: for an ad-hoc action its own name and input with its defaults
    (as Mistral's action execution does), and ``runtime_context`` keeps the
    base's name and input and the chain's output expressions (the base's
    nearest first) for the worker and for :func:`transform`."""

    name: str
    action: actions.ActionDef
    input: dict
    run_input: dict
    runtime_context: dict


def plan(
    found: actions.ActionDef | ActionSpec,
    given: dict,
    namespace: str,
    lookup: Lookup | None,
    ctx: ExprContext,
    check: bool = True,
) -> Plan:
    """The plan for the action :func:`find` found, given the task's
    evaluated input. A built-in's input is checked only with ``check`` (its
    literal input was checked at upload). Raises AdhocError (or an
    ExpressionError) with the message the task fails with."""
    if isinstance(found, ActionSpec):
        return expand(found, given, namespace, lookup, ctx)
    problems = found.check_input(given) if check else []
    if problems:
        raise AdhocError(f"Invalid input [name={found.name}, errors: {'; '.join(problems)}]")
    full = found.with_defaults(given)
    return Plan(found.name, found, full, full, {})


def _with_defaults(spec: ActionSpec, given: dict) -> dict:
    out = dict(given)
    for name, default in spec.input:
        if name not in out and default is not actions.REQUIRED:
            out[name] = default
    return out


def expand(spec: ActionSpec, given: dict, namespace: str, lookup: Lookup | None, ctx: ExprContext) -> Plan:
    """Resolve the chain of bases and evaluate each ``base-input`` over the
    input of its level (the task's input for the first, with each level's
    defaults), seen over ``ctx`` (the task's context, so ``env()`` and
    ``$.var`` of the workflow work, as Mistral's ContextView(input, wf_ctx)).
    Raises AdhocError with Mistral's message: a missing or unexpected input,
    a base that does not exist, a cycle; or an ExpressionError."""
    problem = spec.input_errors(given)
    if problem:
        raise AdhocError(problem)
    top_input = _with_defaults(spec, given)
    current, level_input = spec, top_input
    outputs: list[Any] = []
    visited = {spec.name}
    while True:
        data = {**(ctx.data or {}), **level_input}
        base_input = evaluate(current.base_input, replace(ctx, data=data))
        if not isinstance(base_input, dict):  # base-input is a mapping; kept for a static type checker
            raise AdhocError(f"base-input of {current.name} must be a mapping")
        outputs.append(current.output)
        if current.base in visited:
            raise AdhocError(
                f"Found a cycle in an ad-hoc action chain [action_name={spec.name}, "
                f"duplicate_action_name={current.base}]"
            )
        visited.add(current.base)
        base = actions.get(current.base) or (lookup(current.base, namespace) if lookup else None)
        if base is None:
            raise AdhocError(f"Failed to find base action [action_name={current.base} namespace={namespace}]")
        if isinstance(base, actions.ActionDef):
            problems = base.check_input(base_input)
            if problems:
                raise AdhocError(f"Invalid input [name={base.name}, errors: {'; '.join(problems)}]")
            run_input = base.with_defaults(base_input)
            stored = {"base": base.name, "base_input": run_input, "outputs": outputs[::-1]}
            return Plan(spec.name, base, top_input, run_input, {KEY: stored})
        if len(visited) > ctx.limits.max_depth:
            raise AdhocError(f"The chain of bases of {spec.name} is longer than {ctx.limits.max_depth} actions")
        current, level_input = base, _with_defaults(base, base_input)


def transform(stored: dict, result: Any, limits: Limits = DEFAULT) -> Any:
    """The ad-hoc action's result from its base's: each ``output`` of the
    chain evaluated with the result so far as ``$`` (``_`` in Jinja), the
    base's nearest first. A level without ``output`` passes it on.
    Raises ExpressionError."""
    for output in stored.get("outputs") or ():
        if output is not None:
            result = evaluate(output, ExprContext(data=result, limits=limits))
    return result
