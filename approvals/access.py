"""Who may see and answer an approval, and the inbox built on it. Policy
lives here, not in the views.

Answering needs an assignment: the user's name, one of the user's groups, or
(after an escalation) one of the ``escalate_to`` names. Seeing an approval
also works with the ``approvals.view_approval`` permission (operators,
superusers); seeing never allows answering.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from approvals.models import Approval, Assignment


def _group_names(user) -> list[str]:
    return list(user.groups.values_list("name", flat=True))


def assigned_to(user) -> Q:
    """Approvals ``user`` may answer (a filter on Approval)."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    return Q(assignments__kind=Assignment.USER, assignments__name=user.get_username()) | Q(
        assignments__kind=Assignment.GROUP, assignments__name__in=_group_names(user)
    )


def answerable_by(user) -> QuerySet[Approval]:
    return Approval.objects.filter(assigned_to(user)).distinct()


def can_answer(user, approval: Approval) -> bool:
    return answerable_by(user).filter(pk=approval.pk).exists()


def can_view(user, approval: Approval) -> bool:
    return user.has_perm("approvals.view_approval") or can_answer(user, approval)


def eligible_users(approval: Approval) -> QuerySet:
    """Active accounts that may answer (names without an account are ignored)."""
    rows = list(approval.assignments.values_list("kind", "name"))
    users = [n for k, n in rows if k == Assignment.USER]
    groups = [n for k, n in rows if k == Assignment.GROUP]
    User = get_user_model()
    return User.objects.filter(Q(username__in=users) | Q(groups__name__in=groups), is_active=True).distinct()


AGE_FILTERS = {
    "1h": lambda now: {"created_at__gte": now - timedelta(hours=1)},
    "1d": lambda now: {"created_at__gte": now - timedelta(days=1)},
    "old": lambda now: {"created_at__lt": now - timedelta(days=1)},
    "week": lambda now: {"created_at__lt": now - timedelta(days=7)},
}


def inbox(user, status: str, workflow: str = "", age: str = "") -> QuerySet[Approval]:
    """The approvals ``user`` may answer, narrowed like the inbox's filters
    (shared with the REST list)."""
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
