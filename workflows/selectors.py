"""Reads: the queries the doors share (the /v2 API, the dashboard pages, the
operator console, the admin), each written once. They never write, and
they raise ``NotFound`` (which every door turns into its own 404) where a
door needs the row to exist. Writes go through ``workflows.services``.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, QuerySet

from workflows.errors import NotFound
from workflows.models import (
    ActionDefinition,
    ActionExecution,
    CronTrigger,
    Environment,
    TaskExecution,
    Timer,
    Workbook,
    WorkflowDefinition,
    WorkflowExecution,
)

# What an execution list shows: its rows never load the spec, context or output.
LIST_FIELDS = ("id", "workflow_name", "state", "created_at", "updated_at", "description")


def _one(rows: QuerySet, ident: str) -> Any:
    """The row with id ``ident``, or NotFound naming its model."""
    found = rows.filter(id=ident).first()
    if found is None:
        raise NotFound(rows.model.__name__, ident)
    return found


def execution(execution_id: str) -> WorkflowExecution:
    return _one(WorkflowExecution.objects.all(), execution_id)


def task(task_id: str) -> TaskExecution:
    """The task with its execution (its spec says what the task is)."""
    return _one(TaskExecution.objects.select_related("workflow_execution"), task_id)


def action_execution(action_id: str) -> ActionExecution:
    return _one(ActionExecution.objects.all(), action_id)


def task_exists(task_id: str) -> bool:
    return TaskExecution.objects.filter(id=task_id).exists()


def executions(state: str = "", text: str = "") -> QuerySet[WorkflowExecution]:
    """Newest first, as the dashboard lists them; ``text`` matches the id or
    the workflow's name."""
    rows = WorkflowExecution.objects.only(*LIST_FIELDS).order_by("-created_at", "-id")
    if state:
        rows = rows.filter(state=state)
    if text:
        rows = rows.filter(Q(id__icontains=text) | Q(workflow_name__icontains=text))
    return rows


def recent_executions(workflow: WorkflowDefinition, limit: int = 10) -> list[WorkflowExecution]:
    rows = WorkflowExecution.objects.filter(workflow_name=workflow.name, workflow_namespace=workflow.namespace)
    return list(rows.only(*LIST_FIELDS).order_by("-created_at", "-id")[:limit])


def tasks_of(execution_id: str) -> QuerySet[TaskExecution]:
    """An execution's tasks in the order they were created."""
    return TaskExecution.objects.filter(workflow_execution_id=execution_id).order_by("seq")


def timers_of(execution_id: str) -> QuerySet[Timer]:
    """The execution's durable waits, soonest first."""
    return Timer.objects.filter(execution_id=execution_id).order_by("due_at")


def workflows() -> QuerySet[WorkflowDefinition]:
    return WorkflowDefinition.objects.order_by("namespace", "name")


def workflow_exists(name: str, namespace: str) -> bool:
    return WorkflowDefinition.objects.filter(name=name, namespace=namespace).exists()


# --- definitions: workflows, workbooks, actions, environments, cron triggers
# The lists the dashboard shows, in its order. The /v2 lists start from the
# same rows and order them by ``sort_keys``; the admin orders them by its
# columns. A single row is found where it is written (``books.find_workbook``,
# ``environments.find``, ``triggers.find``, ``services.find_workflow``),
# because the writes look it up the same way.


def workbooks() -> QuerySet[Workbook]:
    return Workbook.objects.order_by("namespace", "name")


def workbook_workflows(workbook: Workbook) -> QuerySet[WorkflowDefinition]:
    """The workflows a workbook defines, by name."""
    return WorkflowDefinition.objects.filter(namespace=workbook.namespace, workbook_name=workbook.name).order_by("name")


def workbook_actions(workbook: Workbook) -> QuerySet[ActionDefinition]:
    """The ad-hoc actions a workbook defines, by name."""
    return ActionDefinition.objects.filter(namespace=workbook.namespace, workbook_name=workbook.name).order_by("name")


def adhoc_actions(namespace: str | None = None) -> QuerySet[ActionDefinition]:
    """Ad-hoc actions by namespace and name; only those of ``namespace`` when
    it is given ('' is the default namespace)."""
    rows = ActionDefinition.objects.order_by("namespace", "name")
    return rows if namespace is None else rows.filter(namespace=namespace)


def environments() -> QuerySet[Environment]:
    return Environment.objects.order_by("name")


def cron_triggers() -> QuerySet[CronTrigger]:
    """The next to fire first."""
    return CronTrigger.objects.order_by("next_execution_time", "name")


def started_by_trigger(trigger: CronTrigger, limit: int) -> QuerySet[WorkflowExecution]:
    """The newest executions a cron trigger started: they carry its id in
    their description (Mistral's ``triggered_by``)."""
    rows = WorkflowExecution.objects.filter(description__contains=json.dumps(trigger.id))
    return rows.only("id", "workflow_name", "state", "created_at").order_by("-created_at")[:limit]
