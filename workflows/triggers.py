"""Cron triggers: the services that create, delete and fire them.

Firing is Mistral's ``process_cron_triggers_v2`` made exactly-once: for
each due trigger, one transaction moves ``next_execution_time`` on with a
compare-and-set UPDATE (``WHERE id = .. AND next_execution_time = <the due
time read>``), or deletes the trigger when its count is used up, and starts
the execution in the same transaction only when that UPDATE changed the
row. Two processes that read the same due time both try; one changes the
row, the other changes nothing and starts nothing. A crash before commit
leaves the trigger due. An execution that can not start (its workflow was
deleted, its input no longer fits) is logged and the trigger still moves
on, as in Mistral.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import cron, engine
from core.lang import spec as lang
from workflows import rows, services
from workflows.environments import json_object
from workflows.errors import Conflict, GustError, InvalidInput, NotFound
from workflows.models import CronTrigger

logger = logging.getLogger("gust.triggers")
NAME_MAX = 200
SCOPES = ("private", "public")
FIELDS = [
    "name",
    "pattern",
    "first_execution_time",
    "remaining_executions",
    "workflow_name",
    "workflow_id",
    "workflow_input",
    "workflow_params",
    "scope",
]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def create(body: Any, now: dt.datetime | None = None) -> CronTrigger:
    """POST /v2/cron_triggers, as Mistral's ``triggers.create_cron_trigger``.

    Raises InvalidInput (Mistral's messages), NotFound (the workflow) or
    Conflict (the name, or the same workflow, input, params, pattern, first
    time and count as another trigger); nothing is stored then.
    """
    if not isinstance(body, dict):
        raise InvalidInput("Send the cron trigger as a JSON object")
    now = now or timezone.now()
    name = body.get("name")
    if not name or not isinstance(name, str) or len(name) > NAME_MAX:
        raise InvalidInput(f"Invalid input for field/attribute name: a string of 1 to {NAME_MAX} characters")
    pattern = body.get("pattern") or None
    if pattern is not None and not isinstance(pattern, str):
        raise InvalidInput("Invalid input for field/attribute pattern: it must be a string")
    scope = body.get("scope") or "private"
    if scope not in SCOPES:
        raise InvalidInput(
            f"Invalid input for field/attribute scope. Value: '{scope}'. Value should be one of: {', '.join(SCOPES)}"
        )
    workflow_input = rows.checked_json(json_object(body.get("workflow_input"), "workflow_input"), "workflow_input")
    workflow_params = rows.checked_json(json_object(body.get("workflow_params"), "workflow_params"), "workflow_params")
    try:
        first_time = _utc(cron.parse_first_time(body.get("first_execution_time")))
        schedule = cron.first_schedule(pattern, first_time, body.get("remaining_executions"), now)
    except cron.CronError as exc:
        raise InvalidInput(str(exc)) from None
    identifier = body.get("workflow_id") or body.get("workflow_name")
    if not identifier:
        raise InvalidInput("workflow_name or workflow_id is required")
    namespace = workflow_params.get("namespace") or ""
    with transaction.atomic():
        wf = services.find_workflow(identifier, namespace)
        _, errors = engine.check_input(lang.build_workflow(wf.name, wf.spec), workflow_input)
        if errors:
            raise InvalidInput(f"Invalid input [name={wf.name}, errors: {'; '.join(errors.values())}]", fields=errors)
        values = dict(
            pattern=pattern,
            first_execution_time=first_time,
            remaining_executions=schedule.remaining_executions,
            workflow_name=wf.name,
            workflow_id=wf.id,
            workflow_namespace=wf.namespace,
            workflow_input=workflow_input,
            workflow_params=workflow_params,
        )
        if CronTrigger.objects.filter(**values).exists():  # Mistral's second unique constraint
            raise Conflict(
                f"Duplicate entry for cron trigger: the same workflow, input, params, pattern, first "
                f"time and count as another trigger [name={name}]"
            )
        try:
            with transaction.atomic():
                return CronTrigger.objects.create(
                    name=name, scope=scope, next_execution_time=schedule.next_execution_time, **values
                )
        except IntegrityError:
            raise Conflict(
                f"Duplicate entry for cron trigger ['name', 'project_id']: {name}, <default-project>"
            ) from None


def find(identifier: str) -> CronTrigger:
    """By name or id, as Mistral."""
    found = CronTrigger.objects.filter(Q(name=identifier) | Q(id=identifier)).first()
    if found is None:
        raise NotFound("Cron trigger", identifier, key="identifier")
    return found


@transaction.atomic
def delete(identifier: str) -> None:
    find(identifier).delete()


def description_for(trigger: CronTrigger) -> str:
    """The description Mistral gives an execution a trigger started
    (``periodic.process_cron_triggers_v2``)."""
    return json.dumps(
        {
            "description": f"Workflow execution created by cron trigger '({trigger.id})'.",
            "triggered_by": {"type": "cron_trigger", "id": trigger.id},
        }
    )


def fire_due(now: dt.datetime | None = None, limit: int = 100) -> int:
    """Fire each trigger due at ``now``, oldest due time first, each in its
    own transaction. Returns how many executions this call started (a due
    time another process took first is not counted)."""
    now = now or timezone.now()
    due = list(CronTrigger.objects.filter(next_execution_time__lte=now).order_by("next_execution_time", "id")[:limit])
    started = 0
    for trigger in due:
        try:
            started += _fire(trigger, now)
        except Exception:
            logger.exception("cron trigger %s could not be fired; it stays due", trigger.name)
    return started


def _fire(trigger: CronTrigger, now: dt.datetime) -> int:
    after = cron.advance(trigger.pattern, trigger.next_execution_time, trigger.remaining_executions, now)
    with transaction.atomic():
        mine = CronTrigger.objects.filter(id=trigger.id, next_execution_time=trigger.next_execution_time)
        if after is None:
            claimed, _ = mine.delete()
        else:
            claimed = mine.update(
                next_execution_time=after.next_execution_time,
                remaining_executions=after.remaining_executions,
                updated_at=now,
            )
        if not claimed:
            return 0  # another process fired this due time, or the trigger was deleted
        try:
            with transaction.atomic():
                ex = services.start_execution(
                    trigger.workflow_id,
                    trigger.workflow_input,
                    dict(trigger.workflow_params),
                    description=description_for(trigger),
                    namespace=trigger.workflow_namespace,
                )
        except GustError as exc:
            logger.error("cron trigger %s could not start %s: %s", trigger.name, trigger.workflow_name, exc.message)
            return 0
    logger.info("cron trigger %s started execution %s of %s", trigger.name, ex.id, trigger.workflow_name)
    return 1


def next_due_in(now: dt.datetime | None = None, most: float = 1.0) -> float:
    """Seconds until the next trigger is due, at most ``most``."""
    nxt = CronTrigger.objects.order_by("next_execution_time").values_list("next_execution_time", flat=True).first()
    if nxt is None:
        return most
    return max(0.0, min(most, (nxt - (now or timezone.now())).total_seconds()))
