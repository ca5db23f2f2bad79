"""Running one action outside any workflow: ``POST /v2/action_executions``
(``mistral run-action``), as Mistral 23's ``DefaultEngine.start_action``.

``params`` decide, as there:

- ``run_sync`` on an async action (``std.async_noop``): refused, "Action does
  not support synchronous execution.".
- An async action without ``run_sync``: stored RUNNING, completed later with
  ``PUT /v2/action_executions/<id>`` (or its worker, for ``std.mistral_http``).
- A sync action with ``save_result`` and without ``run_sync``: stored; a
  worker action (``std.http``, ``std.sleep``) is RUNNING until a worker ran
  it. Gust runs an engine-local one (``std.echo``) at once and stores it
  finished (Mistral hands it to an executor and answers RUNNING).
- Otherwise (``run_sync``, or no flag on a sync action) it runs now, in this
  request, and the answer holds its output; it is stored only with
  ``save_result`` (unsaved, the answer has no id).

``target`` and ``timeout`` are accepted and not used: Gust has no executor
groups, and a worker's lease bounds a running action.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core import actions, adhoc
from core.lang.expressions import ExprContext, ExpressionError
from core.states import State
from workflows import books, conf, queue, rows, signals
from workflows.errors import InvalidInput
from workflows.models import ActionExecution

NAME_MAX = 255


def plan_action(name: str, given: dict, namespace: str = "") -> adhoc.Plan:
    """What run-action runs for ``name``: a built-in or registered action, or
    an ad-hoc one (its base with the input its ``base-input`` makes), as the
    engine plans a task's action. Raises InvalidInput with Mistral's message."""
    found = adhoc.find(name, namespace, None, books.find_action)
    if found is None:
        raise InvalidInput(f"Failed to find action [action_name={name}, namespace={namespace}]")
    try:
        return adhoc.plan(found, given, namespace, books.find_action, ExprContext(data={}, limits=conf.limits()))
    except ExpressionError as exc:
        raise InvalidInput(str(exc)) from exc


def finished_result(action: ActionExecution, state: str, result: Any) -> tuple[str, Any]:
    """An ad-hoc action's ``output`` applied to its base's result (a
    success); a failing ``output`` fails the action with the reason."""
    stored = (action.runtime_context or {}).get(adhoc.KEY)
    if not stored or state != State.SUCCESS:
        return state, result
    try:
        return state, adhoc.transform(stored, result, conf.limits())
    except ExpressionError as exc:
        return State.ERROR, f"Failed to transform the result of {action.name}: {exc}"


def _run_now(adef: actions.ActionDef, action: ActionExecution) -> tuple[State, object]:
    """Run a sync action in this process: (state, result), as the engine and
    the worker report them."""
    try:
        if adef.local is not None:
            return State.SUCCESS, adef.local(action.run_input)
        return State.SUCCESS, import_string(adef.impl)(action.run_input, action)
    except actions.ActionFailed as exc:
        return State.ERROR, exc.error
    except actions.ActionRaised as exc:
        return State.ERROR, (
            f"The action raised an exception [action={exc.label}, action_ex_id={action.id}, msg='{exc.msg}']"
        )
    except Exception as exc:  # any failure of the action itself ends it in ERROR
        return State.ERROR, f"{type(exc).__name__}: {exc}"


def start_action(
    name: Any, action_input: Any = None, params: dict | None = None, description: str = "", namespace: str = ""
) -> ActionExecution:
    """Run or start ``name`` with ``action_input``; returns the stored row, or
    an unsaved one (``id`` None) for a sync run without ``save_result``.

    Raises InvalidInput before anything is stored or run: no name, an
    unknown action, input that is not a mapping or does not match the
    action's parameters, ``run_sync`` on an async action.
    """
    if not name:
        raise InvalidInput("Please provide at least action name to run action.")
    if not isinstance(name, str) or len(name) > NAME_MAX:
        raise InvalidInput(f"Invalid action name: a string of at most {NAME_MAX} characters")
    params = params or {}
    run_sync, save = bool(params.get("run_sync")), bool(params.get("save_result"))
    if action_input is not None and not isinstance(action_input, dict):
        raise InvalidInput(f"Invalid input: the action input must be a JSON object, got {type(action_input).__name__}")
    given = rows.checked_json(action_input or {}, "input")
    plan = plan_action(name, given, namespace)
    adef = plan.action
    problems = adef.validate(plan.run_input) if adef.validate else []
    if problems:
        raise InvalidInput(f"Invalid input [name={adef.name}, errors: {'; '.join(problems)}]")
    if run_sync and not adef.is_sync:
        raise InvalidInput("Action does not support synchronous execution.")
    description = rows.checked_json(description or "", "description")
    action = ActionExecution(
        name=plan.name,
        input=plan.input,
        description=description,
        state=State.RUNNING,
        is_sync=adef.is_sync,
        runtime_context=plan.runtime_context,
    )
    if not run_sync and (save or not adef.is_sync) and adef.kind != "local":
        return _store_started(adef, action)
    state, result = finished_result(action, *_run_now(adef, action))
    action.output = rows.checked_json({"result": result}, "output")
    action.state, action.accepted = state, True
    if state == State.ERROR:
        action.state_info = result if isinstance(result, str) else str(result)
    if not save:
        action.id = None  # Mistral answers with an action execution it did not store
        return action
    action.created_at = action.updated_at = timezone.now()
    with transaction.atomic():
        action.save(force_insert=True)
        signals.action_finished.send(sender=ActionExecution, action=action)
    return action


def _store_started(adef: actions.ActionDef, action: ActionExecution) -> ActionExecution:
    """Store a RUNNING action: a worker runs it after commit, or (async) the
    outside world completes it through the API."""
    now = timezone.now()
    if adef.needs_worker:
        action.deadline = now + timedelta(seconds=conf.seconds("WORKER_QUEUE_TIMEOUT"))
    elif not adef.waits_forever:
        action.deadline = rows.async_deadline(now)
    with transaction.atomic():
        action.save(force_insert=True)
        if not adef.is_sync:
            signals.async_action_started.send(sender=ActionExecution, action=action)
        if adef.needs_worker:
            transaction.on_commit(lambda: queue.run_actions([action.id]))
    return action
