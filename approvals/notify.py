"""Approval notifications: the webhook notifier and e-mail.

``webhooks.notifier.publish`` is called inside the caller's transaction (its
outbox rows commit or vanish with the change); e-mails are sent from
``transaction.on_commit`` so nobody is told about a change that rolled back.
E-mail goes through Django's mailers (Django 6.1 ``MAILERS``: the alias
"approvals" when defined, else "default"); a project that has not configured
``MAILERS`` gets the console backend, so a development install prints the
mails instead of trying SMTP on localhost:25 (Django's own default).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.console import EmailBackend as ConsoleBackend
from django.db import transaction
from django.urls import reverse

from approvals import access
from approvals.models import Approval
from webhooks import notifier
from workflows import conf as wf_conf

logger = logging.getLogger("gust.approvals")

CREATED = "APPROVAL_CREATED"
REMINDER = "APPROVAL_REMINDER"
ESCALATED = "APPROVAL_ESCALATED"
EXPIRED = "APPROVAL_EXPIRED"
ANSWERED = "APPROVAL_ANSWERED"

_SUBJECTS = {
    CREATED: "Approval needed: {title}",
    REMINDER: "Reminder, approval still needed: {title}",
    ESCALATED: "Escalated to you, approval needed: {title}",
    EXPIRED: "Approval expired ({outcome}): {title}",
}


def url_of(approval: Approval) -> str:
    base = wf_conf.get("PUBLIC_URL").rstrip("/")
    return base + reverse("approvals:detail", args=[approval.id])


def payload(approval: Approval) -> dict:
    return {
        "approval_id": approval.id,
        "title": approval.title,
        "status": approval.status,
        "workflow_name": approval.workflow_name,
        "task_name": approval.task_name,
        "action_execution_id": approval.action_id,
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        "url": url_of(approval),
    }


def mailer():
    if hasattr(settings, "MAILERS"):
        return mailers["approvals"] if "approvals" in mailers else mailers.default
    return ConsoleBackend()


def publish(kind: str, approval: Approval, recipients=None, **extra) -> None:
    """Tell the webhooks (now, in the transaction) and, for the kinds that
    have a subject, e-mail ``recipients`` (users; default: everyone who may
    answer) after commit."""
    notifier.publish(kind, {**payload(approval), **extra}, execution_id=approval.execution_id)
    if kind not in _SUBJECTS:
        return
    if recipients is None:
        recipients = access.eligible_users(approval)
    addresses = sorted({u.email for u in recipients if u.email})
    if not addresses:
        return
    subject = _SUBJECTS[kind].format(title=approval.title, outcome=extra.get("outcome", ""))
    body = "\n".join(
        line
        for line in (
            approval.title,
            approval.description,
            f"Workflow {approval.workflow_name}, task {approval.task_name}.",
            f"Expires at {approval.expires_at:%Y-%m-%d %H:%M} UTC." if approval.expires_at else "",
            f"Open it: {url_of(approval)}",
        )
        if line
    )
    transaction.on_commit(lambda: _send(subject, body, addresses))


def _send(subject: str, body: str, addresses: list[str]) -> None:
    # One message per person: recipients do not see each other's addresses.
    messages = [EmailMessage(subject, body, to=[a]) for a in addresses]
    try:
        mailer().send_messages(messages)
    except Exception:  # the change is committed; a mail server problem must not turn it into a 500
        logger.exception("could not send %r to %d recipient(s)", subject, len(addresses))
