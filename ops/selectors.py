"""Reads of the operator console's audit log, shared by its page and the
execution page's audit trail. Writes go through ``ops.services``."""

from __future__ import annotations

from django.db.models import QuerySet

from ops.models import OperatorAction


def audit_log(execution_id: str = "", kind: str = "", username: str = "") -> QuerySet[OperatorAction]:
    """Newest first (the model's order), narrowed by whichever filters are given."""
    rows = OperatorAction.objects.all()
    if execution_id:
        rows = rows.filter(execution_id=execution_id)
    if kind:
        rows = rows.filter(kind=kind)
    if username:
        rows = rows.filter(username=username)
    return rows
