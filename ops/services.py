"""Operator actions: each one checks its permission, makes the change through
the owning service (``workflows.services``, ``tracker.services``) and writes
its ``OperatorAction`` audit row in the same transaction — so there is no
change without an audit row and no audit row for a change that was refused
or rolled back.

Every function raises Forbidden (missing permission), NotFound, Conflict or
InvalidInput; any of them changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction

from approvals.errors import Forbidden
from core.states import State
from ops.models import OperatorAction
from tracker import services as tracker_services
from workflows import selectors
from workflows import services as wf_services
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import TaskExecution

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    type User = AbstractUser | AnonymousUser  # request.user

Kind = OperatorAction.Kind

PERMISSION = {
    Kind.PAUSE: "ops.operate_executions",
    Kind.RESUME: "ops.operate_executions",
    Kind.CANCEL: "ops.operate_executions",
    Kind.RERUN_TASK: "ops.fix_tasks",
    Kind.SKIP_TASK: "ops.fix_tasks",
    Kind.COMPLETE_ACTION: "ops.complete_actions",
    Kind.TRACK: "ops.manage_tracking",
    Kind.UNTRACK: "ops.manage_tracking",
}
STATE_OF = {Kind.PAUSE: State.PAUSED, Kind.RESUME: State.RUNNING, Kind.CANCEL: State.CANCELLED}
KIND_OF = {v.value: k for k, v in STATE_OF.items()}
DONE = {Kind.PAUSE: "Paused", Kind.RESUME: "Resumed", Kind.CANCEL: "Cancelled"}


def allowed(user: User, kind: Kind) -> bool:
    return user.is_active and user.has_perm(PERMISSION[kind])


def _require(user: User, kind: Kind) -> None:
    if not allowed(user, kind):
        raise Forbidden(
            f"{user.get_username() or 'Anonymous'} may not {Kind(kind).label.lower()}: "
            f"the permission {PERMISSION[kind]} is needed"
        )


def _audit(
    user: User,
    kind: Kind,
    summary: str,
    execution_id: str | None = None,
    target_id: str = "",
    target_name: str = "",
    payload: dict | None = None,
) -> OperatorAction:
    return OperatorAction.objects.create(
        username=user.get_username(),
        kind=kind,
        execution_id=execution_id,
        target_id=target_id or "",
        target_name=target_name or "",
        payload=payload or {},
        summary=summary,
    )


def change_execution_state(user: User, execution_id: str, state: str, state_info: str | None = None) -> OperatorAction:
    """Pause (PAUSED), resume (RUNNING) or cancel (CANCELLED) an execution;
    ``state_info`` is kept as the reason of a pause or a cancel."""
    if state not in KIND_OF:
        raise InvalidInput(f"An execution can be set to PAUSED, RUNNING or CANCELLED, not {state!r}")
    kind = KIND_OF[state]
    _require(user, kind)
    with transaction.atomic():
        execution = wf_services.change_execution_state(execution_id, state, reason=state_info)
        return _audit(user, kind, f"{DONE[kind]} execution of {execution.workflow_name}", execution_id=execution_id)


def _fix_task(user: User, task_id: str, kind: Kind, fix: Callable[[str], object], done: str) -> OperatorAction:
    _require(user, kind)
    with transaction.atomic():
        task = TaskExecution.objects.filter(id=task_id).first()
        if task is None:
            raise NotFound("TaskExecution", task_id)
        fix(task_id)
        return _audit(user, kind, f"{done} task {task.name}", task.workflow_execution_id, task_id, task.name)


def rerun_task(user: User, task_id: str, reset: bool = True) -> OperatorAction:
    """Run a failed task again (a new action execution); ``reset=False``:
    only the failed items of a with-items task."""
    return _fix_task(user, task_id, Kind.RERUN_TASK, lambda t: wf_services.rerun_task(t, reset), "Reran")


def skip_task(user: User, task_id: str) -> OperatorAction:
    """Mark a failed task SKIPPED and follow its on-success transitions."""
    return _fix_task(user, task_id, Kind.SKIP_TASK, wf_services.skip_task, "Skipped")


def complete_action(user: User, action_id: str, state: str, output: Any) -> OperatorAction:
    """Finish a RUNNING action by hand with ``output`` as its result (SUCCESS) or error (ERROR)."""
    _require(user, Kind.COMPLETE_ACTION)
    with transaction.atomic():
        action = selectors.action_execution(action_id)
        wf_services.complete_action(action_id, state, output)
        preview = json.dumps(output, ensure_ascii=False)
        preview = preview if len(preview) <= 80 else preview[:79] + "…"
        return _audit(
            user,
            Kind.COMPLETE_ACTION,
            f"Completed {action.name} ({action.task_name}) as {state}: {preview}",
            action.workflow_execution_id,
            action_id,
            action.task_name or action.name,
            {"state": state, "output": output},
        )


def track(user: User, action_id: str, mode: str = "poll") -> OperatorAction:
    _require(user, Kind.TRACK)
    with transaction.atomic():
        action = selectors.action_execution(action_id)
        tracker_services.track(action_id, mode=mode, added_by="operator")
        return _audit(
            user,
            Kind.TRACK,
            f"Started {mode} tracking of {action.name} ({action.task_name})",
            action.workflow_execution_id,
            action_id,
            action.task_name or action.name,
            {"mode": mode},
        )


def untrack(user: User, action_id: str) -> OperatorAction:
    _require(user, Kind.UNTRACK)
    with transaction.atomic():
        action = selectors.action_execution(action_id)
        if not tracker_services.untrack(action_id):
            raise Conflict(f"Action execution {action_id} is not tracked")
        return _audit(
            user,
            Kind.UNTRACK,
            f"Stopped tracking {action.name} ({action.task_name})",
            action.workflow_execution_id,
            action_id,
            action.task_name or action.name,
        )
