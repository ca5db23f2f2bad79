"""Worker side: run actions that do I/O, then report through the services.

``enqueue`` is called from ``transaction.on_commit`` right after the
transaction that started the action, so there is no scheduler between a
task becoming ready and its action starting (seed 003). The job itself
takes an id, loads, does the I/O outside any transaction, and calls
``services.complete_action`` with the result.
"""

from __future__ import annotations

import logging

from django.utils.module_loading import import_string

from workflows import actions, queue, services
from workflows.errors import Conflict, NotFound
from workflows.models import ActionExecution
from workflows.states import State

logger = logging.getLogger("gust.dispatch")


def enqueue(action_ids: list[str]) -> None:
    queue.enqueue("workflows.dispatch.run_action", [(a,) for a in action_ids], "action")


def enqueue_continue(execution_id: str) -> None:
    queue.enqueue("workflows.dispatch.continue_execution", [(execution_id,)], "continue")


def continue_execution(execution_id: str) -> None:
    """The job after a transaction that reached the engine's step limit."""
    services.continue_execution(execution_id)


def run_action(action_id: str) -> None:
    action = (
        ActionExecution.objects.select_related("task_execution", "workflow_execution")
        .filter(id=action_id)
        .first()
    )
    if action is None or action.state != State.RUNNING:
        logger.info("action %s is gone or no longer RUNNING; nothing to run", action_id)
        return
    adef = actions.get(action.name)
    impl = import_string(adef.impl)
    try:
        result = impl(action.input, action)
    except actions.ActionFailed as exc:
        _report(action_id, State.ERROR, exc.error)
    except Exception as exc:  # any failure of the action itself ends it in ERROR
        logger.exception("action %s (%s) raised", action_id, action.name)
        _report(action_id, State.ERROR, f"{type(exc).__name__}: {exc}")
    else:
        if adef.is_sync:
            _report(action_id, State.SUCCESS, result)
        else:  # handed to the outside system: from now on it answers, or heartbeats
            services.record_action_info(action_id, result or {}, started=True)


def _report(action_id: str, state: str, result) -> None:
    try:
        services.complete_action(action_id, state, result)
    except (Conflict, NotFound) as exc:
        # Completed, cancelled or deleted meanwhile: the first result wins.
        logger.info("result of action %s not applied: %s", action_id, exc)
