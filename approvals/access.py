"""Who may see and answer an approval. Policy lives here, not in the views;
the inbox built on it is ``approvals.selectors.inbox``.

Answering needs an assignment: the user's name, one of the user's groups, or
(after an escalation) one of the ``escalate_to`` names. Seeing an approval
also works with the ``approvals.view_approval`` permission (operators,
superusers); seeing never allows answering.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

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
