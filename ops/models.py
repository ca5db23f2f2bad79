"""The operator console's audit log; its permissions are the console's own."""

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from django.db import models

from approvals.models import AuditRecord, json_text

if TYPE_CHECKING:

    class TextChoices(StrEnum):
        """Django's TextChoices as the type checker must see it (a StrEnum whose
        members have a label). Django ships no types, so without this a member
        written with its label, ``RERUN_TASK = "rerun_task", "rerun task"``,
        reads as that tuple where a kind is passed on."""

        choices: ClassVar[list[tuple[str, str]]]

        @property
        def label(self) -> str: ...
else:
    TextChoices = models.TextChoices


class OperatorAction(AuditRecord):
    """One operator intervention, written in the same transaction as the change."""

    class Kind(TextChoices):
        PAUSE = "pause"
        RESUME = "resume"
        CANCEL = "cancel"
        RERUN_TASK = "rerun_task", "rerun task"
        SKIP_TASK = "skip_task", "skip task"
        COMPLETE_ACTION = "complete_action", "complete action"
        TRACK = "track", "start tracking"
        UNTRACK = "untrack", "stop tracking"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    username = models.CharField(max_length=150)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    execution_id = models.CharField(max_length=36, null=True, blank=True, db_index=True)
    target_id = models.CharField(max_length=36, blank=True, default="", help_text="Task or action execution id.")
    target_name = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    summary = models.TextField()

    class Meta:
        db_table = "approvals_operatoraction"  # made by the approvals app, which held the console before this app
        ordering = ["-at", "-id"]
        default_permissions = ("view",)
        permissions = [
            ("operate_executions", "Can pause, resume and cancel executions"),
            ("fix_tasks", "Can rerun and skip failed tasks"),
            ("complete_actions", "Can complete action executions by hand"),
            ("manage_tracking", "Can start and stop tracking actions"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.kind}"

    @property
    def payload_text(self) -> str:
        return json_text(self.payload)
