"""Reads of approvals, shared by the pages and the REST API (``/api/approvals``):
the inbox, one approval, the answers a user gave. Who may see and answer
is policy, in ``approvals.access``; writes go through ``approvals.services``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from approvals.access import answerable_by
from approvals.models import Approval, ApprovalResponse
from workflows.errors import NotFound
from workflows.models import WorkflowExecution

AGE_FILTERS = {
    "1h": lambda now: {"created_at__gte": now - timedelta(hours=1)},
    "1d": lambda now: {"created_at__gte": now - timedelta(days=1)},
    "old": lambda now: {"created_at__lt": now - timedelta(days=1)},
    "week": lambda now: {"created_at__lt": now - timedelta(days=7)},
}


def inbox(user: AbstractBaseUser, status: str, workflow: str = "", age: str = "") -> QuerySet[Approval]:
    """The approvals ``user`` may answer, narrowed like the inbox's filters,
    newest first."""
    qs = answerable_by(user)
    username = user.get_username()
    if status == "pending":
        qs = qs.filter(status=Approval.Status.PENDING).exclude(responses__username=username)
    elif status == "answered":
        qs = qs.filter(responses__username=username)
    elif status == "expired":
        qs = qs.filter(status=Approval.Status.EXPIRED)
    if workflow:
        qs = qs.filter(workflow_name__icontains=workflow)
    if age in AGE_FILTERS:
        qs = qs.filter(**AGE_FILTERS[age](timezone.now()))
    return qs.order_by("-created_at", "id")


def approval(approval_id: str, *, with_answers: bool = False) -> Approval:
    """The approval, or NotFound. ``with_answers``: its assignments and
    responses come with it (two more queries now, none when they are read),
    for a door that shows all of them."""
    rows = Approval.objects.all()
    if with_answers:
        rows = rows.prefetch_related("assignments", "responses")
    found = rows.filter(id=approval_id).first()
    if found is None:
        raise NotFound("Approval", approval_id)
    return found


def approval_of_action(action_id: str) -> Approval:
    """The approval an action execution asks for, or NotFound."""
    found = Approval.objects.filter(action_id=action_id).first()
    if found is None:
        raise NotFound("Approval", action_id, key="action_id")
    return found


def approvals_of_actions(action_ids: Iterable[str]) -> dict[str, Approval]:
    """The approvals these action executions ask for, by action id (the waiting view)."""
    return {a.action_id: a for a in Approval.objects.filter(action_id__in=list(action_ids))}


def decisions_of(username: str, approvals: Iterable[Approval]) -> dict[str, str]:
    """approval id -> the decision ``username`` gave, for those answered."""
    rows = ApprovalResponse.objects.filter(approval__in=list(approvals), username=username)
    return dict(rows.values_list("approval_id", "decision"))


def execution_of(approval: Approval) -> WorkflowExecution | None:
    """The execution the approval belongs to (its id and state only), or None
    once it has been deleted."""
    return WorkflowExecution.objects.filter(id=approval.execution_id).only("id", "state").first()
