"""Small row helpers that every writing module of this app shares
(services, environments, action_runs, triggers): JSON within the limits, the
execution's row lock, an async action's deadline. They import no service, so
the services can import the modules that use them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.lang.values import NotJson, to_json
from workflows import conf
from workflows.errors import InvalidInput, NotFound
from workflows.models import WorkflowExecution


def checked_json(value: Any, root: str) -> Any:
    """``value`` as storable JSON within the depth and field size limits;
    raises InvalidInput naming the path (``input.x: ...``) otherwise."""
    limits = conf.limits()
    try:
        return to_json(value, max_depth=limits.max_depth, max_bytes=limits.field_size_bytes, root=root)
    except NotJson as exc:
        raise InvalidInput(f"Invalid {root}: {exc}") from None


def lock_execution(execution_id: str) -> WorkflowExecution:
    # The workflow text is read only when this process has not parsed it yet
    # (_spec_for): for a 5,000-task workflow it is most of the row.
    execution = WorkflowExecution.objects.select_for_update().defer("spec").filter(id=execution_id).first()
    if execution is None:
        raise NotFound("WorkflowExecution", execution_id)
    return execution


def async_deadline(now: datetime) -> datetime | None:
    """When a started async action with no result fails (None: never)."""
    seconds = conf.seconds("ASYNC_ACTION_TIMEOUT")
    return now + timedelta(seconds=seconds) if seconds > 0 else None


def ts(value: datetime | None) -> str | None:
    """A row's time as Mistral's API writes it (UTC, to the second)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None
