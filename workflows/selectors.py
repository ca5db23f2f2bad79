"""Reads: the queries the doors share (the /v2 API, the dashboard pages, the
operator console, the admin), each written once. They never write, and
they raise ``NotFound`` (which every door turns into its own 404) where a
door needs the row to exist. Writes go through ``workflows.services``.
The tracker's own rows are read through ``tracker.selectors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from core.states import State
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


def _of(field: str, ids: str | Iterable[str]) -> Q:
    """``field = id`` for one id; ``field IN (...)`` for a list of ids or a subquery."""
    return Q(**{field: ids}) if isinstance(ids, str) else Q(**{f"{field}__in": ids})


def all_executions() -> QuerySet[WorkflowExecution]:
    """Every execution, whole rows, in no order: the /v2 list (which filters,
    sorts and pages it) and the admin's."""
    return WorkflowExecution.objects.all()


def execution(execution_id: str, fields: Sequence[str] = ()) -> WorkflowExecution:
    """The execution, or only its ``fields`` (and id)."""
    rows = all_executions()
    return _one(rows.only(*fields) if fields else rows, execution_id)


def all_tasks() -> QuerySet[TaskExecution]:
    """Every task, in no order: the /v2 list and the admin's."""
    return TaskExecution.objects.all()


def task(task_id: str, fields: Sequence[str] = ()) -> TaskExecution:
    """The task with its execution (its spec says what the task is). With
    ``fields``, only those columns (and id), and its execution only when one
    of them is the execution's (``workflow_execution__state``)."""
    rows = all_tasks()
    if not fields or any(f.startswith("workflow_execution__") for f in fields):
        rows = rows.select_related("workflow_execution")
    return _one(rows.only(*fields) if fields else rows, task_id)


def all_action_executions() -> QuerySet[ActionExecution]:
    """Every action execution, in no order: the /v2 list and the admin's."""
    return ActionExecution.objects.all()


def action_execution(action_id: str) -> ActionExecution:
    return _one(all_action_executions(), action_id)


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


def children_of(tasks: str | Iterable[str]) -> QuerySet[WorkflowExecution]:
    """The sub-workflow executions started by a task (its id) or by several
    (ids, or a subquery of them), oldest first."""
    return WorkflowExecution.objects.filter(_of("task_execution_id", tasks)).order_by("created_at", "id")


def successful_runs(workflow_id: str, excluding: str) -> QuerySet:
    """(created_at, updated_at) of the workflow's executions that succeeded,
    newest first, but for the execution ``excluding``."""
    return (
        WorkflowExecution.objects.filter(workflow_id=workflow_id, state=State.SUCCESS)
        .exclude(id=excluding)
        .order_by("-created_at")
        .values_list("created_at", "updated_at")
    )


def execution_counts() -> dict[str, int]:
    """How many executions are in each state (the states that have some)."""
    rows = WorkflowExecution.objects.order_by().values("state").annotate(n=Count("id"))
    return {row["state"]: row["n"] for row in rows}


def execution_stamp(execution_id: str) -> tuple[datetime, str] | None:
    """(updated_at, state) of the execution, or None when it is gone: what
    its live page watches (every engine change saves the row)."""
    return WorkflowExecution.objects.filter(id=execution_id).values_list("updated_at", "state").first()


def executions_stamp() -> tuple[int, datetime | None]:
    """How many executions there are and when one last changed: what the live list watches."""
    agg = WorkflowExecution.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    return agg["n"], agg["last"]


@lru_cache(maxsize=4)
def _execution_select(vendor: str, columns: tuple[str, ...]) -> tuple[str, frozenset[str], frozenset[str]]:
    """The SELECT of ``columns`` of one execution, and which of them hold JSON and which times."""
    qn = connection.ops.quote_name
    kinds = {f.column: f.get_internal_type() for f in WorkflowExecution._meta.concrete_fields}
    sql = (
        f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(WorkflowExecution._meta.db_table)} WHERE {qn('id')} = %s"
    )
    return (
        sql,
        frozenset(c for c in columns if kinds[c] == "JSONField"),
        frozenset(c for c in columns if kinds[c] == "DateTimeField"),
    )


def execution_values(execution_id: str, columns: tuple[str, ...]) -> dict[str, Any] | None:
    """``columns`` of one execution as the ORM gives them (JSON decoded,
    times aware), or None, in one plain SELECT: for GET /v2/executions/<id>,
    the poll every client makes, where the query compiler and the columns it
    does not show were half of the request's time (bench/README.md)."""
    sql, json_columns, time_columns = _execution_select(connection.vendor, columns)
    with connection.cursor() as cursor:
        cursor.execute(sql, [execution_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = {}
    for name, value in zip(columns, row, strict=True):
        if name in json_columns and isinstance(value, (str, bytes)):
            value = json.loads(value)  # SQLite's text; psycopg decodes jsonb itself
        elif name in time_columns and isinstance(value, str):
            value = _sqlite_time(value)
        values[name] = value
    return values


def _sqlite_time(value: str) -> datetime | None:
    """SQLite stores an aware datetime as UTC text; Django reads it back the same way."""
    return timezone.make_aware(datetime.fromisoformat(value), UTC) if value else None


def recent_executions(workflow: WorkflowDefinition, limit: int = 10) -> list[WorkflowExecution]:
    rows = WorkflowExecution.objects.filter(workflow_name=workflow.name, workflow_namespace=workflow.namespace)
    return list(rows.only(*LIST_FIELDS).order_by("-created_at", "-id")[:limit])


def tasks_of(executions: str | Iterable[str]) -> QuerySet[TaskExecution]:
    """An execution's tasks (its id) in the order they were created, or the
    tasks of several (ids, or a subquery of them)."""
    return TaskExecution.objects.filter(_of("workflow_execution_id", executions)).order_by("seq")


def actions_of(tasks: str | Iterable[str]) -> QuerySet[ActionExecution]:
    """The action executions of a task (its id) or of several (ids, or a
    subquery of them), oldest first."""
    return ActionExecution.objects.filter(_of("task_execution_id", tasks)).order_by("created_at", "id")


def running_async_actions() -> QuerySet[ActionExecution]:
    """Async actions still RUNNING, that is waiting for the outside world,
    oldest first, each with its execution."""
    return (
        ActionExecution.objects.filter(state=State.RUNNING, is_sync=False)
        .select_related("workflow_execution")
        .order_by("created_at", "id")
    )


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
