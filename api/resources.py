"""Rows as Mistral's v2 API shows them.

Mistral returns ``input``, ``output``, ``params``, ``published``, ``result``
and ``runtime_context`` as JSON-encoded strings inside the JSON document, and
times as ``YYYY-MM-DD HH:MM:SS``; python-mistralclient expects exactly that.
"""

import json
from types import SimpleNamespace

from workflows import selectors
from workflows.models import (
    ActionDefinition,
    ActionExecution,
    TaskExecution,
    Workbook,
    WorkflowDefinition,
    WorkflowExecution,
)
from workflows.rows import ts


def js(value) -> str:
    return json.dumps(value)


def _definition(row: WorkflowDefinition | Workbook) -> dict:
    """The fields Mistral's workflow and workbook resources share; ``updated_at`` only once updated."""
    data = {
        "id": row.id,
        "name": row.name,
        "namespace": row.namespace,
        "definition": row.definition,
        "tags": row.tags,
        "scope": row.scope,
        "project_id": row.project_id,
        "created_at": ts(row.created_at),
    }
    if row.updated_at:
        data["updated_at"] = ts(row.updated_at)
    return data


def workflow(wf: WorkflowDefinition) -> dict:
    from core.lang.spec import build_workflow

    return {
        **_definition(wf),
        "input": wf.input,
        "interface": build_workflow(wf.name, wf.spec).interface(),
        "checksum": wf.checksum,
    }


def execution(ex: WorkflowExecution, detail: bool = False) -> dict:
    data = {
        "id": ex.id,
        "workflow_id": ex.workflow_id,
        "workflow_name": ex.workflow_name,
        "workflow_namespace": ex.workflow_namespace,
        "description": ex.description,
        "tags": ex.tags,
        "params": js(ex.params),
        "task_execution_id": ex.task_execution_id,
        "root_execution_id": ex.root_execution_id,
        "state": ex.state,
        "state_info": ex.state_info,
        "input": js(ex.input),
        "output": js(ex.output),
        "created_at": ts(ex.created_at),
        "updated_at": ts(ex.updated_at),
        "project_id": ex.project_id,
    }
    if detail:
        data["published_global"] = "{}"
    return data


# The columns execution() shows, read without the ORM for GET /v2/executions/<id>
# (the poll every client makes; the query compiler and the row's JSON fields
# it does not show were half of that request's time, bench/README.md).
_EXECUTION_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_name",
    "workflow_namespace",
    "description",
    "tags",
    "params",
    "task_execution_id",
    "root_execution_id",
    "state",
    "state_info",
    "input",
    "output",
    "created_at",
    "updated_at",
    "project_id",
)


def execution_by_id(execution_id: str, detail: bool = False) -> dict | None:
    """``execution(row)`` of one execution in one plain SELECT, or None."""
    values = selectors.execution_values(execution_id, _EXECUTION_COLUMNS)
    return None if values is None else execution(SimpleNamespace(**values), detail=detail)


def task(t: TaskExecution, ex: WorkflowExecution | None = None) -> dict:
    ex = ex or t.workflow_execution
    return {
        "id": t.id,
        "name": t.name,
        "type": t.type,
        "workflow_name": ex.workflow_name,
        "workflow_namespace": ex.workflow_namespace,
        "workflow_id": ex.workflow_id,
        "workflow_execution_id": ex.id,
        "tags": [],
        "state": t.state,
        "state_info": t.state_info,
        "project_id": ex.project_id,
        "runtime_context": js(t.runtime_context),
        "result": js(t.result) if t.result is not None or t.state in ("SUCCESS", "ERROR") else "[]",
        "published": js(t.published),
        "processed": t.processed,
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
        "started_at": ts(t.started_at),
        "finished_at": ts(t.finished_at),
    }


def action_execution(a: ActionExecution) -> dict:
    return {
        "id": a.id,
        "workflow_name": a.workflow_name,
        "workflow_namespace": "",
        "task_execution_id": a.task_execution_id,
        "task_name": a.task_name,
        "state": a.state,
        "state_info": a.state_info,
        "tags": None,
        "name": a.name,
        "description": a.description,
        "project_id": a.project_id,
        "accepted": a.accepted,
        "input": js(a.input),
        "output": js(a.output) if a.output is not None else None,
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
    }


def environment(env) -> dict:
    """Mistral's Environment resource: ``variables`` JSON-encoded (``jsontype``)."""
    return {
        "id": env.id,
        "name": env.name,
        "description": env.description,
        "variables": js(env.variables),
        "scope": env.scope,
        "project_id": env.project_id,
        "created_at": ts(env.created_at),
        "updated_at": ts(env.updated_at),
    }


def cron_trigger(t) -> dict:
    """Mistral's CronTrigger resource: ``workflow_input`` and
    ``workflow_params`` JSON-encoded, times as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return {
        "id": t.id,
        "name": t.name,
        "workflow_name": t.workflow_name,
        "workflow_id": t.workflow_id,
        "workflow_input": js(t.workflow_input),
        "workflow_params": js(t.workflow_params),
        "scope": t.scope,
        "pattern": t.pattern,
        "remaining_executions": t.remaining_executions,
        "first_execution_time": ts(t.first_execution_time),
        "next_execution_time": ts(t.next_execution_time),
        "project_id": t.project_id,
        "created_at": ts(t.created_at),
        "updated_at": ts(t.updated_at),
    }


def action_definition(adef) -> dict:
    return {
        "id": adef.name,
        "name": adef.name,
        "is_system": True,
        "input": adef.signature(),
        "description": adef.description,
        "tags": [],
        "scope": "public",
        "namespace": "",
        "project_id": "<default-project>",
        "created_at": None,
        "updated_at": None,
    }


def adhoc_action(a: ActionDefinition) -> dict:
    """An ad-hoc action as Mistral's action resource (``is_system`` false)."""
    return {
        "id": a.id,
        "name": a.name,
        "is_system": False,
        "input": a.input,
        "description": a.description,
        "tags": a.tags,
        "definition": a.definition,
        "scope": a.scope,
        "namespace": a.namespace,
        "project_id": a.project_id,
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
    }


def workbook(wb: Workbook) -> dict:
    return _definition(wb)
