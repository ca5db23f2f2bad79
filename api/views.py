"""REST /v2: Mistral-compatible views. Each one parses, calls one service,
and renders a Mistral-shaped resource; errors become ``{"faultstring"}``
through ``api.errors``."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api import report, resources
from api.listing import in_namespace, paginate
from api.parsers import loads
from core.states import State
from ops import services as ops
from workflows import action_runs, books, completions, environments, rows, selectors, services
from workflows import permissions as perms
from workflows.errors import InvalidInput, NotFound
from workflows.models import TaskExecution

EXECUTION_FIELDS = {
    "id",
    "workflow_id",
    "workflow_name",
    "workflow_namespace",
    "description",
    "state",
    "state_info",
    "task_execution_id",
    "root_execution_id",
    "created_at",
    "updated_at",
    "project_id",
}
TASK_FIELDS = {
    "id",
    "name",
    "state",
    "state_info",
    "processed",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "type",
}
ACTION_EX_FIELDS = {
    "id",
    "name",
    "state",
    "state_info",
    "accepted",
    "task_name",
    "workflow_name",
    "task_execution_id",
    "created_at",
    "updated_at",
}
WORKFLOW_FIELDS = {"id", "name", "namespace", "scope", "project_id", "created_at", "updated_at", "checksum"}


def _json_arg(value, what: str):
    """Mistral accepts input/params as a JSON object or a string holding one."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = loads(value)
        except ValueError as exc:
            raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def text_body(request, what: str = "workflow") -> str:
    body = request.data
    if isinstance(body, bytes):
        body = body.decode()
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput(f"Send the {what} definition as YAML with Content-Type: text/plain")
    return body


def validation_response(valid: bool, error: str | None, errors: list[dict]) -> Response:
    """Mistral's validate answer: ``{"valid": ..., "error": ...}``, plus every error with its path."""
    body: dict = {"valid": valid}
    if not valid:
        body.update(error=error, errors=errors)
    return Response(body)


def namespace_arg(request, given: str | None = None) -> str:
    """Mistral's ``namespace``: from the path when given there, else ``?namespace=``; '' is the default one."""
    return books.check_namespace(given or request.query_params.get("namespace", "") or "")


class Root(APIView):
    permission_classes = [AllowAny]  # discovery is public, as in Mistral

    def get(self, request):
        return Response({"uri": request.build_absolute_uri("/v2")})


class Versions(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        href = request.build_absolute_uri("/v2")
        return Response(
            {
                "versions": [
                    {"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "target": "v2", "rel": "self"}]}
                ]
            }
        )


# --- workflows ---------------------------------------------------------------


class Workflows(APIView):
    required = {"POST": (perms.ADD_WORKFLOW,), "PUT": (perms.ADD_WORKFLOW, perms.CHANGE_WORKFLOW)}

    @extend_schema(operation_id="workflows_list")
    def get(self, request):
        qs = in_namespace(request, selectors.workflows())
        return Response(
            paginate(
                request,
                qs,
                key="workflows",
                render=resources.workflow,
                filters=WORKFLOW_FIELDS | {"tags", "input"},
                sortable=WORKFLOW_FIELDS,
            )
        )

    def post(self, request):
        saved = services.save_workflows(text_body(request), namespace_arg(request))
        return Response({"workflows": [resources.workflow(w) for w in saved]}, status=status.HTTP_201_CREATED)

    def put(self, request):
        saved = services.save_workflows(text_body(request), namespace_arg(request), update=True)
        return Response({"workflows": [resources.workflow(w) for w in saved]})


class WorkflowDetail(APIView):
    required = {"PUT": (perms.CHANGE_WORKFLOW,), "DELETE": (perms.DELETE_WORKFLOW,)}

    def get(self, request, identifier):
        wf = services.find_workflow(identifier, namespace_arg(request))
        return Response(resources.workflow(wf))

    def put(self, request, identifier):
        wf = services.find_workflow(identifier, namespace_arg(request))
        text = text_body(request)
        specs = services.parse_or_raise(text)
        if list(specs) != [wf.name]:
            raise InvalidInput(f"The definition must hold exactly the workflow '{wf.name}'")
        saved = services.save_workflows(text, wf.namespace, update=True)
        return Response({"workflows": [resources.workflow(w) for w in saved]})

    def delete(self, request, identifier):
        services.delete_workflow(identifier, namespace_arg(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkflowValidate(APIView):
    def post(self, request):
        return validation_response(*services.validate_definition(text_body(request)))


# --- executions --------------------------------------------------------------


class Executions(APIView):
    required = {"POST": (perms.START,)}

    def get(self, request):
        return Response(
            paginate(
                request,
                selectors.all_executions(),
                key="executions",
                render=resources.execution,
                filters=EXECUTION_FIELDS,
                sortable=EXECUTION_FIELDS,
            )
        )

    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object with workflow_name or workflow_id")
        identifier = data.get("workflow_id") or data.get("workflow_name")
        if not identifier:
            raise InvalidInput("workflow_name or workflow_id is required")
        params = _json_arg(data.get("params"), "params") or {}
        namespace = books.check_namespace(data.get("workflow_namespace") or params.get("namespace") or "")
        ex = services.start_execution(
            identifier,
            _json_arg(data.get("input"), "input"),
            params,
            description=data.get("description") or "",
            namespace=namespace,
        )
        # Read back only when something may have changed the row since, or
        # when the database keeps JSON in its own key order (PostgreSQL's
        # jsonb), so that this answer and a later GET show the same text.
        if ex.changed_after_start or connection.vendor != "sqlite":
            ex.refresh_from_db()
        return Response(resources.execution(ex), status=status.HTTP_201_CREATED)


class ExecutionDetail(APIView):
    required = {"DELETE": (perms.DELETE_EXECUTION,)}

    def get(self, request, execution_id):
        found = resources.execution_by_id(execution_id, detail=True)
        if found is None:
            raise NotFound("WorkflowExecution", execution_id)
        return Response(found)

    def put(self, request, execution_id):
        """Pause, resume or cancel (``state``), change ``description``, or
        merge a new ``params.env`` (``mistral execution-update -s RUNNING
        --env``), with Mistral's rules: env only alone or on resume, and only
        while the execution is IDLE, PAUSED or ERROR (else 403)."""
        data = request.data if isinstance(request.data, dict) else {}
        env = environments.json_object(data.get("params"), "params").get("env")
        if not data or not (data.get("state") or "description" in data or env):
            raise InvalidInput("The property state, description, or env is not provided for update.")
        if env and data.get("state") and data["state"] != State.RUNNING:
            raise InvalidInput(
                "The property env can only be updated when workflow execution is not running or on resume from pause."
            )
        ex = selectors.execution(execution_id)
        if "description" in data:
            perms.require(request.user, perms.EDIT_EXECUTION)
        with transaction.atomic():  # a refused resume leaves the env as it was
            # The state is checked on the locked row, in the transaction that changes it.
            current = rows.lock_execution(execution_id).state
            if env:
                if not data.get("state"):
                    perms.require(request.user, perms.EDIT_EXECUTION)
                environments.update_execution_env(execution_id, env)
            if data.get("state") and (data["state"] != current or env):
                info = data.get("state_info")
                if info is not None and not isinstance(info, str):
                    raise InvalidInput("state_info must be a string")
                if perms.enforced():  # checks ops.operate_executions and writes the audit row
                    ops.change_execution_state(request.user, execution_id, data["state"], info)
                else:
                    services.change_execution_state(execution_id, data["state"], reason=info)
        if "description" in data:
            ex = services.update_execution_fields(execution_id, description=data["description"])
        ex.refresh_from_db()
        return Response(resources.execution(ex, detail=True))

    def delete(self, request, execution_id):
        services.delete_execution(execution_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExecutionReport(APIView):
    """Mistral's execution report: ``errors_only``, ``max_depth`` and
    ``statistics_only`` as its ExecutionReportController takes them."""

    PARAMS = {"errors_only", "max_depth", "statistics_only"}

    def get(self, request, execution_id):
        params = request.query_params
        unknown = sorted(set(params) - self.PARAMS)
        if unknown:
            raise InvalidInput(f"Unknown argument: {', '.join(unknown)}; known: {', '.join(sorted(self.PARAMS))}")
        return Response(
            report.build(
                execution_id,
                errors_only=report.parse_flag(params.get("errors_only"), "errors_only"),
                max_depth=report.parse_depth(params.get("max_depth")),
                statistics_only=report.parse_flag(params.get("statistics_only"), "statistics_only"),
            )
        )


class SubExecutions(APIView):
    """Mistral's sub-executions of an execution or a task (``mistral
    execution-get-sub-executions``, ``task-get-sub-executions``)."""

    PARAMS = {"errors_only", "max_depth", "include_output"}

    def get(self, request, execution_id=None, task_id=None):
        params = request.query_params
        unknown = sorted(set(params) - self.PARAMS)
        if unknown:
            raise InvalidInput(f"Unknown argument: {', '.join(unknown)}; known: {', '.join(sorted(self.PARAMS))}")
        found = report.sub_executions(
            "execution" if execution_id else "task",
            execution_id or task_id,
            errors_only=report.parse_flag(params.get("errors_only"), "errors_only"),
            max_depth=report.parse_depth(params.get("max_depth")),
        )
        with_output = report.parse_flag(params.get("include_output"), "include_output")
        items = [resources.execution(ex) for ex in found]
        if not with_output:  # as Mistral, which leaves the output unloaded
            for item in items:
                item.pop("output")
        return Response({"executions": items})


# --- tasks -------------------------------------------------------------------


# Task filters that live on the workflow execution row.
TASK_EXECUTION_FILTERS = {
    "workflow_execution_id": "workflow_execution_id",
    "workflow_name": "workflow_execution__workflow_name",
    "workflow_id": "workflow_execution__workflow_id",
    "workflow_namespace": "workflow_execution__workflow_namespace",
}


def _tasks(qs: QuerySet, request):
    # Tasks created in one step share created_at; seq keeps them in creation order.
    return paginate(
        request,
        qs.select_related("workflow_execution"),
        key="tasks",
        render=resources.task,
        filters={**{f: f for f in TASK_FIELDS}, **TASK_EXECUTION_FILTERS},
        sortable=TASK_FIELDS | {"seq"},
        default_sort="created_at",
        tiebreak=("seq",),
    )


class Tasks(APIView):
    def get(self, request):
        return Response(_tasks(selectors.all_tasks(), request))


class ExecutionTasks(APIView):
    def get(self, request, execution_id):
        selectors.execution(execution_id)
        return Response(_tasks(selectors.tasks_of(execution_id), request))


class TaskDetail(APIView):
    def get(self, request, task_id):
        return Response(resources.task(selectors.task(task_id)))

    def put(self, request, task_id):
        """Mistral's task update: ``state: RUNNING`` reruns a failed task
        (``mistral task-rerun``), ``state: SKIPPED`` skips it and follows its
        on-skip (or on-success) transitions; nothing else is accepted."""
        data = request.data if isinstance(request.data, dict) else {}
        task = selectors.task(task_id)
        if data.get("name") and data["name"] != task.name:
            raise InvalidInput("Task name does not match.")
        target = data.get("state")
        reset = data.get("reset") is not False  # Mistral's `reset or None`: absent or null resets
        if target == State.RUNNING and not reset and not task_spec(task).get("with-items"):
            raise InvalidInput("Only with-items task has the option to not reset.")
        fixes = {
            State.RUNNING: (ops.rerun_task, services.rerun_task),
            State.SKIPPED: (ops.skip_task, services.skip_task),
        }
        if target not in fixes:
            raise InvalidInput("Invalid task state. Only updating task to rerun or skip is supported.")
        audited, plain = fixes[target]
        env = data.get("env")
        extra = {"reset": reset} if target == State.RUNNING else {}
        with transaction.atomic():  # a refused rerun leaves the env as it was
            if env:  # ``mistral task-rerun --env``: merged into the execution's env first, as Mistral
                environments.update_execution_env(task.workflow_execution_id, env)
            if perms.enforced():  # checks ops.fix_tasks and writes the audit row
                audited(request.user, task_id, **extra)
            else:
                plain(task_id, **extra)
        return Response(resources.task(selectors.task(task_id)))


def task_spec(task: TaskExecution) -> dict:
    """The task's mapping in the definition its execution runs."""
    return (task.workflow_execution.spec.get("tasks") or {}).get(task.name) or {}


# --- action executions -------------------------------------------------------


def _action_executions(qs: QuerySet, request):
    return paginate(
        request,
        qs,
        key="action_executions",
        render=resources.action_execution,
        filters=ACTION_EX_FIELDS | {"workflow_execution_id"},
        sortable=ACTION_EX_FIELDS,
    )


def _output_arg(value):
    """``output`` as sent: any JSON value, or a string holding JSON (Mistral's CLI
    sends parsed JSON; its docs show raw numbers)."""
    if isinstance(value, str):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


class ActionExecutions(APIView):
    required = {"POST": (perms.RUN_ACTION,)}

    def get(self, request):
        return Response(_action_executions(selectors.all_action_executions(), request))

    def post(self, request):
        """``mistral run-action``: run one action outside any workflow
        (``workflows.action_runs``). 201 with the action execution (no id
        when it ran synchronously without ``save_result``)."""
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            raise InvalidInput("Send a JSON object with the action's name, input and params")
        action = action_runs.start_action(
            data.get("name"),
            _json_arg(data.get("input"), "input"),
            _json_arg(data.get("params"), "params"),
            description=data.get("description") or "",
            namespace=data.get("workflow_namespace") or "",
        )
        return Response(resources.action_execution(action), status=status.HTTP_201_CREATED)


class TaskActionExecutions(APIView):
    def get(self, request, task_id):
        if not selectors.task_exists(task_id):
            raise NotFound("TaskExecution", task_id)
        return Response(_action_executions(selectors.actions_of(task_id), request))


class ActionExecutionDetail(APIView):
    def permission_denied(self, request, message=None, code=None):
        if request.method in ("PUT", "POST") and not (request.user and request.user.is_authenticated):
            raise NotAuthenticated(
                "Authentication credentials were not provided. To complete an action without a login, send "
                "the result to the signed URL in the Gust-Callback-URL header of the action's request; or "
                "send an API token (X-Auth-Token or 'Authorization: Token <token>'; `manage.py api_token <user>`)"
                " of a user with the permission ops.complete_actions."
            )
        super().permission_denied(request, message, code)

    def get(self, request, action_id):
        return Response(resources.action_execution(selectors.action_execution(action_id)))

    def put(self, request, action_id):
        """Complete an async action: ``{"state": "SUCCESS"|"ERROR", "output": ...}``,
        optionally with ``finished_at`` (ISO 8601 or epoch seconds: when the
        job ended, for the live latency figures; a bad value is ignored).

        200 with the stored action; 404 unknown id; 400 bad state; 409 (with
        ``state``) when it is no longer RUNNING, which changes nothing.
        """
        received_at = timezone.now()
        data = request.data if isinstance(request.data, dict) else None
        if data is None or "state" not in data:
            raise InvalidInput("Send a JSON object with 'state' (SUCCESS or ERROR) and 'output'")
        state = data["state"]
        output = rows.checked_json(_output_arg(data.get("output")), "output")
        # By hand, or the callback of an action that asked for one (tracker.latency.mode_of).
        with completions.completing(
            "by hand", door="api", detected_at=received_at, outside_done_at=data.get("finished_at")
        ):
            if perms.enforced():
                # By hand: ops.complete_actions, audited. An approval's action
                # is otherwise answered through its approval, by its assignees.
                ops.complete_action(request.user, action_id, state, output)
                action = selectors.action_execution(action_id)
            else:
                action = services.complete_action(action_id, state, output)
        return Response(resources.action_execution(action))

    # Mistral's docs tell outside systems to POST the result to this path.
    post = put
