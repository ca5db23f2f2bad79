"""The only writer of approvals and their responses.

Life of an approval:

1. ``open_for_action`` (receiver of ``async_action_started``, inside the
   engine's transaction) checks the action's inputs and stores the
   Approval with its assignments; bad inputs fail the action after commit.
2. ``answer`` stores one immutable response per person and, once the
   quorum (or a rejection) decides, completes the action through
   ``workflows.services.complete_action`` in the same transaction.
3. ``sweep`` (called periodically by the tracker) sends reminders,
   escalates, and expires approvals with their default outcome.
4. ``close_for_action`` (receiver of ``action_finished``) closes an approval
   whose action ended some other way (cancelled, completed by hand).

Locking: the execution row first, then the approval row, in every path —
the engine holds the execution lock when it calls the receivers, so taking
them in the other order could deadlock on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from approvals import access, notify, schema
from approvals.decision import APPROVED, decide
from approvals.errors import Forbidden, InvalidData
from approvals.models import Approval, ApprovalResponse, Assignment
from approvals.params import parse
from core.states import State
from workflows import completions
from workflows import services as wf_services
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import ActionExecution, WorkflowExecution

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    type User = AbstractUser | AnonymousUser  # request.user

logger = logging.getLogger("gust.approvals")

ACTION_NAME = "gust.approval"
SWEEP_BATCH = 200  # approvals handled per sweep call; the rest are due next time


# --- opening and closing (signal receivers) -------------------------------------


def open_for_action(action: ActionExecution) -> Approval | None:
    """Store the approval of a ``gust.approval`` action that just started.

    Runs inside the engine's transaction, so the approval commits or rolls
    back with the action. Its input was checked by the engine already
    (``approvals.actions``): an invalid one failed the action in the step
    that started it, and this is never called for it.
    """
    if action.run_name != ACTION_NAME:  # itself, or the base of an ad-hoc action
        return None
    p = parse(action.run_input or {})
    now = timezone.now()
    approval = Approval.objects.create(
        action_id=action.id,
        execution_id=action.workflow_execution_id,
        workflow_name=action.workflow_name or "",
        task_name=action.task_name or "",
        title=p.title,
        description=p.description,
        form=p.form,
        form_order=p.form_order,
        quorum=p.quorum,
        reject_on_first=p.reject_on_first,
        expires_in=p.expires_in,
        expires_at=now + timedelta(seconds=p.expires_in) if p.expires_in else None,
        on_expiry=p.on_expiry,
        escalate_to=p.escalate_to,
        remind_every=p.remind_every,
        next_reminder_at=now + timedelta(seconds=p.remind_every) if p.remind_every else None,
    )
    Assignment.objects.bulk_create(
        [Assignment(approval=approval, kind=Assignment.USER, name=n) for n in p.assignees]
        + [Assignment(approval=approval, kind=Assignment.GROUP, name=n) for n in p.groups]
    )
    notify.publish(notify.CREATED, approval)
    return approval


def close_for_action(action: ActionExecution) -> None:
    """An approval's action ended without a decision from here: close it so
    nobody answers a question that is no longer asked."""
    if action.run_name != ACTION_NAME:
        return
    approval = Approval.objects.select_for_update().filter(action_id=action.id, status=Approval.Status.PENDING).first()
    if approval is None:  # decided here (the usual case) or never opened
        return
    _close(
        approval,
        Approval.Status.CANCELLED,
        None,
        f"The action ended {action.state} without an answer here"
        + (f": {action.state_info}" if action.state_info else ""),
    )


def _close(approval: Approval, status: str, result: dict | None, reason: str = "") -> None:
    approval.status = status
    approval.result = result
    approval.closed_at = timezone.now()
    approval.closed_reason = reason
    approval.next_reminder_at = None
    approval.save()


def _lock(approval_id: str, *, skip_locked: bool = False) -> Approval | None:
    """Lock the approval's execution, then the approval (see the module docstring)."""
    head = Approval.objects.filter(id=approval_id).values("execution_id").first()
    if head is None:
        return None
    execution_id = head["execution_id"]
    if execution_id:
        # The lock is taken here, by this statement, before the approval's.
        held = WorkflowExecution.objects.select_for_update(skip_locked=skip_locked).filter(id=execution_id).exists()
        if not held and skip_locked and WorkflowExecution.objects.filter(id=execution_id).exists():
            return None  # someone else holds the execution: leave this approval for the next round
    return Approval.objects.select_for_update(skip_locked=skip_locked).filter(id=approval_id).first()


# --- answering -------------------------------------------------------------------


def answer(approval_id: str, user: User, decision: str, comment: str = "", data: Any = None) -> Approval:
    """Record ``user``'s decision ("approve" or "reject") and apply the outcome.

    Raises NotFound, InvalidInput (bad decision), Forbidden (not an
    assignee), Conflict (already answered by this user, or the approval is
    closed) or InvalidData (``data`` does not match the form; field errors
    attached). Any error changes nothing. When the answer decides the
    approval, its action is completed in the same transaction; if the
    workflow is paused, the engine keeps the result and moves on at resume.
    """
    if decision not in (ApprovalResponse.APPROVE, ApprovalResponse.REJECT):
        raise InvalidInput(f"decision must be 'approve' or 'reject', not {decision!r}")
    if not isinstance(comment, str):
        raise InvalidInput("comment must be a string")
    with transaction.atomic():
        approval = _lock(approval_id)
        if approval is None:
            raise NotFound("Approval", approval_id)
        if not access.can_answer(user, approval):
            raise Forbidden(f"{user.get_username() or 'Anonymous'} is not an assignee of this approval")
        username = user.get_username()
        previous = approval.responses.filter(username=username).first()
        if previous is not None:
            raise Conflict(
                f"You already answered this approval ({previous.decision}, "
                f"{previous.at:%Y-%m-%d %H:%M:%S} UTC); an answer can not be changed",
                approval.status,
            )
        if not approval.is_open:
            raise Conflict(f"This approval is already {approval.status}; it takes no more answers", approval.status)
        data, errors = schema.validate(approval.form, data, require=decision == ApprovalResponse.APPROVE)
        if errors:
            raise InvalidData(errors)
        try:
            with transaction.atomic():
                response = ApprovalResponse.objects.create(
                    approval=approval, username=username, decision=decision, comment=comment.strip(), data=data
                )
        except IntegrityError:  # the same user in a concurrent request won the race
            raise Conflict(
                "You already answered this approval; an answer can not be changed", approval.status
            ) from None
        _decide(approval, response)
        notify.publish(notify.ANSWERED, approval, user=username, decision=decision)
    return approval


def _decide(approval: Approval, last: ApprovalResponse) -> None:
    responses = list(approval.responses.all())
    answered = {r.username for r in responses}
    outcome = decide(
        quorum=approval.quorum,
        reject_on_first=approval.reject_on_first,
        approvals=sum(r.decision == ApprovalResponse.APPROVE for r in responses),
        rejections=sum(r.decision == ApprovalResponse.REJECT for r in responses),
        can_still_answer=access.eligible_users(approval).exclude(username__in=answered).count(),
    )
    if outcome is None:
        approval.save(update_fields=["updated_at"])
        return
    # The data of the answer that decided; earlier answers stay in "responses".
    result = _result(approval, outcome == APPROVED, last.data, responses)
    _close(approval, outcome, result, f"Decided by {last.username}")
    _complete(approval, result)


def _result(
    approval: Approval, approved: bool, data: dict, responses: Iterable[ApprovalResponse], expired: bool = False
) -> dict:
    return {"approved": approved, "data": data, "responses": [r.as_result() for r in responses], "expired": expired}


def _complete(approval: Approval, result: dict) -> None:
    if approval.action_id is None:
        raise Conflict("The execution of this approval was deleted", approval.status)
    wf_services.complete_action(approval.action_id, State.SUCCESS, result)


# --- periodic work ---------------------------------------------------------------


def sweep(now: datetime | None = None) -> dict:
    """Remind, escalate and expire what is due at ``now`` (default: the current time).

    Idempotent, and safe with several callers: each approval is handled in
    its own transaction under its row lock (``SKIP LOCKED`` on PostgreSQL,
    so another sweeper moves on), and re-checked once locked. Returns
    counts: reminded, escalated, expired, closed (action already gone),
    errors.
    """
    now = now or timezone.now()
    counts = {"reminded": 0, "escalated": 0, "expired": 0, "closed": 0, "errors": 0}
    due = (
        Approval.objects.filter(status=Approval.Status.PENDING)
        .filter(Q(expires_at__lte=now) | Q(next_reminder_at__lte=now))
        .order_by("created_at")
        .values_list("id", flat=True)[:SWEEP_BATCH]
    )
    for approval_id in list(due):
        try:
            with transaction.atomic():
                approval = _lock(approval_id, skip_locked=True)
                if approval is None or not approval.is_open:
                    continue  # another sweeper or an answer got there first
                done = _sweep_one(approval, now)
                if done:
                    counts[done] += 1
        except Exception:
            logger.exception("sweeping approval %s failed; it stays due", approval_id)
            counts["errors"] += 1
    return counts


def _sweep_one(approval: Approval, now: datetime) -> str | None:
    if approval.expires_at and approval.expires_at <= now:
        if approval.on_expiry == Approval.OnExpiry.ESCALATE and approval.escalated_at is None:
            return _escalate(approval, now)
        return _expire(approval)
    if approval.next_reminder_at and approval.next_reminder_at <= now:
        answered = approval.responses.values_list("username", flat=True)
        waiting_for = list(access.eligible_users(approval).exclude(username__in=answered))
        approval.reminders_sent += 1
        approval.next_reminder_at = now + timedelta(seconds=approval.remind_every)
        approval.save(update_fields=["reminders_sent", "next_reminder_at", "updated_at"])
        notify.publish(notify.REMINDER, approval, recipients=waiting_for, reminder=approval.reminders_sent)
        return "reminded"
    return None


def _escalate(approval: Approval, now: datetime) -> str:
    """Add ``escalate_to`` (group names, else usernames) as assignees and give
    them one more ``expires_in``; a second expiry rejects."""
    groups = set(Group.objects.filter(name__in=approval.escalate_to).values_list("name", flat=True))
    before = set(access.eligible_users(approval).values_list("pk", flat=True))
    Assignment.objects.bulk_create(
        [
            Assignment(
                approval=approval, kind=Assignment.GROUP if n in groups else Assignment.USER, name=n, via="escalation"
            )
            for n in approval.escalate_to
        ],
        ignore_conflicts=True,
    )
    approval.escalated_at = now
    approval.expires_at = now + timedelta(seconds=approval.expires_in)
    approval.save(update_fields=["escalated_at", "expires_at", "updated_at"])
    newcomers = access.eligible_users(approval).exclude(pk__in=before)
    notify.publish(notify.ESCALATED, approval, recipients=list(newcomers), escalate_to=approval.escalate_to)
    return "escalated"


def _expire(approval: Approval) -> str:
    approved = approval.on_expiry == Approval.OnExpiry.APPROVE
    responses = list(approval.responses.all())
    result = _result(approval, approved, schema.defaults(approval.form), responses, expired=True)
    outcome = "approved" if approved else "rejected"
    _close(approval, Approval.Status.EXPIRED, result, f"Expired without a decision; {outcome} by default")
    try:
        with transaction.atomic(), completions.completing("approval", door="approval-expiry"):
            _complete(approval, result)
    except (Conflict, NotFound) as exc:  # the action ended some other way meanwhile
        _close(approval, Approval.Status.CANCELLED, None, f"Expired, but its action was gone: {exc.message}")
        return "closed"
    notify.publish(notify.EXPIRED, approval, outcome=outcome)
    return "expired"
