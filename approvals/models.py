"""Human approvals and the operator audit log.

Rows are written only by ``approvals.services`` (approvals and responses)
and ``ops.services`` (operator actions). Responses and operator
actions are audit records: once written they can not be changed or deleted
through the ORM (``save`` of an existing row, ``delete`` and the queryset
``update``/``delete`` all raise).

An approval keeps copies of its execution id, workflow and task names so
that its history survives the deletion of the execution (``action`` then
becomes NULL).
"""

import json
import uuid

from django.db import models

from workflows.models import ActionExecution


def new_uuid() -> str:
    return str(uuid.uuid4())


def json_text(value) -> str:
    """One-line JSON for pages (a dict's Python repr would show True/None)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else ""


class Approval(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        APPROVED = "APPROVED"
        REJECTED = "REJECTED"
        EXPIRED = "EXPIRED"
        # The action ended without a decision from here (cancelled execution,
        # completed by hand, failed creation).
        CANCELLED = "CANCELLED"

    class OnExpiry(models.TextChoices):
        REJECT = "reject"
        APPROVE = "approve"
        ESCALATE = "escalate"

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    action = models.OneToOneField(
        ActionExecution, on_delete=models.SET_NULL, null=True, blank=True, related_name="approval"
    )
    execution_id = models.CharField(max_length=36, null=True, blank=True, db_index=True)
    workflow_name = models.CharField(max_length=255, blank=True, default="", db_index=True)
    task_name = models.CharField(max_length=255, blank=True, default="")
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    form = models.JSONField(default=dict, blank=True, help_text="JSON Schema of the data an approver enters.")
    # jsonb (PostgreSQL) does not keep key order, so the order of the form's
    # fields is stored as written in the workflow.
    form_order = models.JSONField(default=list, blank=True)
    quorum = models.PositiveIntegerField(default=1)
    reject_on_first = models.BooleanField(default=True)
    expires_in = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    on_expiry = models.CharField(max_length=10, choices=OnExpiry.choices, default=OnExpiry.REJECT)
    escalate_to = models.JSONField(default=list, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    remind_every = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    next_reminder_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reminders_sent = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    result = models.JSONField(null=True, blank=True, help_text="What the action was completed with.")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return f"{self.title} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING


class Assignment(models.Model):
    """Who may answer: one row per user or group, so the inbox is one indexed query."""

    USER, GROUP = "user", "group"
    KINDS = [(USER, "user"), (GROUP, "group")]

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="assignments")
    kind = models.CharField(max_length=5, choices=KINDS)
    name = models.CharField(max_length=150)
    via = models.CharField(max_length=10, default="assignee", help_text="assignee or escalation")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["approval", "kind", "name"], name="uniq_assignment")]
        indexes = [models.Index(fields=["kind", "name"])]

    def __str__(self):
        return f"{self.kind}:{self.name}"


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} rows are an audit record and can not be changed")

    def delete(self):
        raise TypeError(f"{self.model.__name__} rows are an audit record and can not be deleted")


class AuditRecord(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} rows are an audit record and can not be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} rows are an audit record and can not be deleted")


class ApprovalResponse(AuditRecord):
    APPROVE, REJECT = "approve", "reject"
    DECISIONS = [(APPROVE, "approve"), (REJECT, "reject")]

    # PROTECT: an approval with answers can not be deleted, so neither can its audit rows.
    approval = models.ForeignKey(Approval, on_delete=models.PROTECT, related_name="responses")
    # The username, not a foreign key: the record must outlive the account.
    username = models.CharField(max_length=150)
    decision = models.CharField(max_length=7, choices=DECISIONS)
    comment = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        # The database refuses a second answer even if two requests race.
        constraints = [models.UniqueConstraint(fields=["approval", "username"], name="one_response_per_user")]

    def __str__(self):
        return f"{self.username} {self.decision} {self.approval_id}"

    @property
    def data_text(self) -> str:
        return json_text(self.data)

    def as_result(self) -> dict:
        return {
            "user": self.username,
            "decision": self.decision,
            "comment": self.comment,
            "data": self.data,
            "at": self.at.isoformat(),
        }
