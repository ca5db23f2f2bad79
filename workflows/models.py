"""Stored workflows and executions. Executions, tasks, action executions and
timers are written only by ``services`` (each model's writers: ARCHITECTURE.md,
tests/engine/test_writer_contract.py); the pages, the API and the admin read
through ``selectors``."""

import uuid

from django.db import models

from core import adhoc
from core.states import CHOICES, State


def new_uuid() -> str:
    return str(uuid.uuid4())


class WorkflowDefinition(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=255)
    namespace = models.CharField(max_length=255, default="", blank=True)
    definition = models.TextField(help_text="The YAML text of this one workflow.")
    spec = models.JSONField(help_text="The parsed workflow mapping.")
    checksum = models.CharField(max_length=32)
    tags = models.JSONField(default=list, blank=True)
    input = models.TextField(default="", blank=True, help_text="Mistral's input signature.")
    scope = models.CharField(max_length=16, default="private")
    project_id = models.CharField(max_length=80, default="<default-project>")
    workbook_name = models.CharField(
        max_length=255, null=True, blank=True, help_text="The workbook it belongs to (its name is <workbook>.<name>)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "name"]
        constraints = [models.UniqueConstraint(fields=["name", "namespace"], name="uniq_workflow_name_ns")]

    def __str__(self):
        return self.name


class _Definition(models.Model):
    """What a workbook and an ad-hoc action share, as Mistral's Definition model."""

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=255)
    namespace = models.CharField(max_length=255, default="", blank=True)
    definition = models.TextField(help_text="The YAML text it was created from.")
    spec = models.JSONField(help_text="The parsed mapping.")
    description = models.TextField(default="", blank=True)
    tags = models.JSONField(default=list, blank=True)
    scope = models.CharField(max_length=16, default="private")
    project_id = models.CharField(max_length=80, default="<default-project>")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return self.name


class Workbook(_Definition):
    """A workbook: its text, and the workflows and ad-hoc actions stored
    from it under ``<name>.<workflow>`` / ``<name>.<action>`` (same namespace)."""

    class Meta:
        ordering = ["created_at", "name"]
        constraints = [models.UniqueConstraint(fields=["name", "namespace"], name="uniq_workbook_name_ns")]


class ActionDefinition(_Definition):
    """An ad-hoc action: a ``base`` action with ``base-input`` built from its
    own ``input``, and an ``output`` over the base's result."""

    input = models.TextField(default="", blank=True, help_text="Mistral's input signature.")
    workbook_name = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name", "namespace"], name="uniq_action_name_ns")]


class WorkflowExecution(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    workflow_id = models.CharField(max_length=36, db_index=True)
    workflow_name = models.CharField(max_length=255, db_index=True)
    workflow_namespace = models.CharField(max_length=255, default="", blank=True)
    spec = models.JSONField(help_text="The workflow mapping this execution runs (a copy).")
    description = models.TextField(default="", blank=True)
    tags = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=20, choices=CHOICES, default=State.IDLE, db_index=True)
    state_info = models.TextField(null=True, blank=True)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="Vars and global publishes (Mistral's context).")
    runtime = models.JSONField(
        default=dict,
        blank=True,
        help_text="The engine's counters: next task seq, tasks per active state, unhandled errors, the final "
        "context, what waits for a resume.",
    )
    # A sub-workflow's parent task and root execution, as Mistral's.
    task_execution_id = models.CharField(max_length=36, null=True, blank=True, db_index=True)
    root_execution_id = models.CharField(max_length=36, null=True, blank=True, db_index=True)
    accepted = models.BooleanField(
        null=True,
        blank=True,
        help_text="A sub-workflow: null until its parent task took its end; false once a retry or rerun "
        "of that task made it no longer count.",
    )
    project_id = models.CharField(max_length=80, default="<default-project>")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.workflow_name} {self.id}"


class TaskExecution(models.Model):
    id = models.CharField(primary_key=True, max_length=36, editable=False)
    workflow_execution = models.ForeignKey(WorkflowExecution, on_delete=models.CASCADE, related_name="tasks")
    name = models.CharField(max_length=255)
    seq = models.PositiveIntegerField(help_text="Creation order inside the execution.")
    type = models.CharField(max_length=20, default="ACTION")
    state = models.CharField(max_length=20, choices=CHOICES, db_index=True)
    state_info = models.TextField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    published = models.JSONField(default=dict, blank=True)
    runtime_context = models.JSONField(default=dict, blank=True)
    in_context = models.JSONField(
        default=dict, blank=True, help_text="The outbound context of the tasks that led here."
    )
    processed = models.BooleanField(default=False)
    items = models.JSONField(
        null=True,
        blank=True,
        help_text="A with-items task's evaluated lists (variable -> list), stored when its items start; "
        "read only when it starts more of them.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow_execution", "seq"]
        indexes = [
            models.Index(fields=["workflow_execution", "seq"]),
            models.Index(fields=["workflow_execution", "name", "seq"], name="task_latest_of_name"),
            models.Index(fields=["workflow_execution", "state"], name="task_by_state"),
        ]

    def __str__(self):
        return f"{self.name} {self.id}"


# runtime_context key a worker stamps when it handed an async action to the
# outside system (``services.record_action_info(started=True)``): from then
# on the action waits for its result, no longer for a worker.
HANDED_OVER = "handed_over_at"


class ActionExecution(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    task_execution = models.ForeignKey(
        TaskExecution, on_delete=models.CASCADE, related_name="action_executions", null=True, blank=True
    )
    workflow_execution = models.ForeignKey(
        WorkflowExecution, on_delete=models.CASCADE, related_name="action_executions", null=True, blank=True
    )
    name = models.CharField(max_length=255)
    workflow_name = models.CharField(max_length=255, null=True, blank=True)
    task_name = models.CharField(max_length=255, null=True, blank=True)
    state = models.CharField(max_length=20, choices=CHOICES, db_index=True)
    state_info = models.TextField(null=True, blank=True)
    is_sync = models.BooleanField(default=True)
    accepted = models.BooleanField(default=False)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    attempt = models.PositiveIntegerField(
        default=1, help_text="Raised each time the action is sent again; older callback URLs then answer 410."
    )
    deadline = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the overdue sweep fails it: queue deadline until a worker starts it, then the worker's "
        "lease (renewed while it runs), then the async deadline (extended by heartbeats).",
    )
    worker_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker claimed it; a job delivered again is then not run twice."
    )
    runtime_context = models.JSONField(
        default=dict, blank=True, help_text="What the worker learnt when starting it (e.g. a status URL)."
    )
    description = models.TextField(default="", blank=True)
    project_id = models.CharField(max_length=80, default="<default-project>")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.name} {self.id}"

    @property
    def handed_over(self) -> bool:
        return HANDED_OVER in (self.runtime_context or {})

    @property
    def run_name(self) -> str:
        """The action that runs: this one's name, or for an ad-hoc action its
        built-in base's (``core.adhoc``), as workers, the tracker and
        approvals need it."""
        return adhoc.run_name(self.name, self.runtime_context)

    @property
    def run_input(self) -> dict:
        """The input the action that runs gets: this one's, or for an ad-hoc
        action the base input its ``base-input`` made."""
        base = (self.runtime_context or {}).get(adhoc.KEY)
        return base["base_input"] if base else self.input


class Timer(models.Model):
    """A durable wait of a task (wait-before, wait-after, a retry delay, a
    timeout): the process that runs timers claims due rows and sends the
    engine ``TimerFired``. A restart loses none; a row is fired once."""

    execution = models.ForeignKey(WorkflowExecution, on_delete=models.CASCADE, related_name="timers")
    task_execution_id = models.CharField(max_length=36)
    kind = models.CharField(max_length=20)
    due_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]

    def __str__(self):
        return f"{self.kind} of {self.task_execution_id} at {self.due_at:%H:%M:%S}"


class EngineProcess(models.Model):
    """A running Gust worker or tracker process, for graceful shutdown: the
    last one to stop pauses running workflows, the next one to start resumes
    exactly those (seed 004)."""

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "engine processes"

    def __str__(self):
        return self.name


class ShutdownLock(models.Model):
    """One row, locked while deciding to pause on shutdown or resume on start."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)


class NamedResource(models.Model):
    """What Mistral's named resources share (``MistralSecureModelBase``)."""

    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=200, unique=True)
    scope = models.CharField(max_length=16, default="private")
    project_id = models.CharField(max_length=80, default="<default-project>")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "name"]

    def __str__(self):
        return self.name


class Environment(NamedResource):
    """Mistral's named environment: ``variables`` an execution started with
    ``params.env: <name>`` copies (so deleting or changing it later does not
    touch executions that hold the copy)."""

    description = models.TextField(default="", blank=True)
    variables = models.JSONField(default=dict, blank=True)


class CronTrigger(NamedResource):
    """Starts ``workflow_name`` at each time of ``pattern`` (and/or once at
    ``first_execution_time``). ``next_execution_time`` is the next due time;
    the process that fires it moves it on with a compare-and-set UPDATE in
    the transaction that starts the execution, so each due time starts one
    execution however many processes look."""

    pattern = models.CharField(max_length=100, null=True, blank=True)
    first_execution_time = models.DateTimeField(null=True, blank=True)
    next_execution_time = models.DateTimeField(db_index=True)
    remaining_executions = models.IntegerField(null=True, blank=True)
    workflow_name = models.CharField(max_length=255)
    workflow_id = models.CharField(max_length=36)
    workflow_namespace = models.CharField(max_length=255, default="", blank=True)
    workflow_input = models.JSONField(default=dict, blank=True)
    workflow_params = models.JSONField(default=dict, blank=True)
