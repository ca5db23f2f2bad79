"""Named environments (Mistral's ``/v2/environments``) and an execution's
``env``: the services that write them, and how ``params.env`` becomes the
mapping ``env()`` reads.

As in Mistral (``mistral/engine/workflows.py: _get_environment``) an
execution started with ``params.env: <name>`` keeps a copy of the
environment's variables, evaluated once at start unless ``evaluate_env`` is
false; deleting or changing the environment later leaves it alone. A new
``env`` on resume or on a task rerun is merged into that copy
(``mistral/services/workflows.py: update_workflow_execution_env``).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.lang.expressions import ExprContext, ExpressionError, evaluate
from core.states import State
from workflows import conf, rows
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import Environment, WorkflowExecution

NAME_MAX = 200  # Mistral's column
SCOPES = ("private", "public")
CREATE_KEYS = ["name", "description", "variables", "scope"]
UPDATE_KEYS = ["description", "variables", "scope"]
# Mistral's update_workflow_execution_env: only then may an execution's env change.
ENV_UPDATABLE = (State.IDLE, State.PAUSED, State.ERROR)


class NotAllowed(Conflict):
    """Mistral's NotAllowedException: 403."""

    status = 403


# --- the API body ---------------------------------------------------------------


def json_object(value: Any, field: str) -> dict:
    """A JSON object sent as itself or as a string holding one (Mistral's
    ``jsontype``: python-mistralclient sends ``variables``, ``env``,
    ``workflow_input`` and ``workflow_params`` JSON-encoded). Empty → {}."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise InvalidInput(f"Invalid input for field/attribute {field}. Value is not valid JSON: {exc}") from None
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(
            f"Invalid input for field/attribute {field}. JsonType field value must be a dictionary [actual={value!r}]"
        )
    return value


def _values(body: Any, legal: list[str]) -> dict:
    """The fields of a create or update body, checked as Mistral's
    ``EnvironmentController._validate_environment`` and its resource types."""
    if not isinstance(body, dict):
        raise InvalidInput("Send the environment as a JSON object with name, description, variables and scope")
    if set(body) - set(legal):
        raise InvalidInput(f"Please, check your environment definition. Only: {legal} are allowed as definition keys.")
    out: dict = {}
    if "variables" in body:
        out["variables"] = rows.checked_json(json_object(body["variables"], "variables"), "variables")
    if body.get("description") is not None:
        if not isinstance(body["description"], str):
            raise InvalidInput("Invalid input for field/attribute description: it must be a string")
        out["description"] = rows.checked_json(body["description"], "description")
    if body.get("scope") is not None:
        if body["scope"] not in SCOPES:
            raise InvalidInput(
                f"Invalid input for field/attribute scope. Value: '{body['scope']}'. "
                f"Value should be one of: {', '.join(SCOPES)}"
            )
        out["scope"] = body["scope"]
    return out


def _name(body: Any) -> str:
    name = body.get("name") if isinstance(body, dict) else None
    if not name:
        raise InvalidInput("Name of the environment is not provided.")
    if not isinstance(name, str) or len(name) > NAME_MAX:
        raise InvalidInput(f"Invalid input for field/attribute name: a string of at most {NAME_MAX} characters")
    return name


# --- named environments -----------------------------------------------------------


def find(name: str) -> Environment:
    env = Environment.objects.filter(name=name).first()
    if env is None:
        raise NotFound("Environment", name, key="name")
    return env


def create(body: Any) -> Environment:
    """POST /v2/environments. Raises InvalidInput (nothing stored) or a
    Conflict with Mistral's duplicate message."""
    values = _values(body, CREATE_KEYS)
    name = _name(body)
    try:
        with transaction.atomic():
            return Environment.objects.create(name=name, **values)
    except IntegrityError:
        raise Conflict(f"Duplicate entry for Environment ['name', 'project_id']: {name}, <default-project>") from None


def update(body: Any) -> Environment:
    """PUT /v2/environments: the fields sent replace the stored ones (the
    name picks the environment). Raises InvalidInput or NotFound; either way
    nothing changes."""
    name = _name(body)
    values = _values({k: v for k, v in body.items() if k != "name"}, UPDATE_KEYS)
    with transaction.atomic():
        env = Environment.objects.select_for_update().filter(name=name).first()
        if env is None:
            raise NotFound("Environment", name, key="name")
        for k, v in values.items():
            setattr(env, k, v)
        env.updated_at = timezone.now()
        env.save()
    return env


@transaction.atomic
def delete(name: str) -> None:
    find(name).delete()


# --- an execution's env -------------------------------------------------------------


def resolve(params: dict) -> dict:
    """``params`` with ``env`` as the mapping the execution keeps: a name is
    looked up (the variables are copied), a mapping taken as it is; then,
    unless ``evaluate_env`` is false, every expression in it is evaluated
    with ``env()`` reading the unevaluated mapping, as Mistral's
    ``_get_environment``. Raises InvalidInput naming ``params.env``."""
    env = params.get("env")
    if not env:
        return {**params, "env": {}}
    if isinstance(env, str):
        found = Environment.objects.filter(name=env).values_list("variables", flat=True).first()
        if found is None:
            raise InvalidInput(f"Environment is not found: {env}")
        env = found
    elif not isinstance(env, dict):
        raise InvalidInput(
            f"params.env: Unexpected value type for environment [env={env!r}, type={type(env).__name__}]; "
            f"send a mapping or the name of an environment"
        )
    if "evaluate_env" not in params or params["evaluate_env"]:  # Mistral: any false value turns it off
        limits = conf.limits()
        try:
            env = evaluate(env, ExprContext(data={"__env": env}, env=env, limits=limits))
        except ExpressionError as exc:
            raise InvalidInput(f"params.env: can not evaluate the environment: {exc}") from None
    return {**params, "env": rows.checked_json(env, "params.env")}


def merge(left: dict, right: dict) -> dict:
    """Mistral's ``utils.merge_dicts(left, right)``: ``right`` wins, nested
    mappings merge."""
    out = dict(left)
    for k, v in right.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def update_execution_env(execution_id: str, env: Any) -> WorkflowExecution:
    """Merge ``env`` into the execution's env (Mistral: on resume, on a task
    rerun, or alone). Must run in the caller's transaction when it goes with
    a resume or a rerun, so a refused move leaves the env as it was. Raises
    InvalidInput (not a mapping), NotFound, or NotAllowed (403) unless the
    execution is IDLE, PAUSED or ERROR."""
    env = rows.checked_json(json_object(env, "env"), "env")
    with transaction.atomic():
        execution = rows.lock_execution(execution_id)
        if not env:
            return execution
        if execution.state not in ENV_UPDATABLE:
            raise NotAllowed(
                "Updating env to workflow execution is only permitted if it is in IDLE, PAUSED, or ERROR state."
            )
        params = dict(execution.params)
        params["env"] = rows.checked_json(merge(params.get("env") or {}, env), "params.env")
        execution.params = params
        execution.save(update_fields=["params", "updated_at"])
    return execution
