"""Django admin for every Gust model. State fields are read-only: a state
changes only through ``workflows.services`` (the dashboard and the API
offer pause/resume/cancel and action completion)."""

from django.contrib import admin

from workflows.models import ActionExecution, TaskExecution, WorkflowDefinition, WorkflowExecution

STATE_FIELDS = ("state", "state_info", "accepted", "processed", "started_at", "finished_at", "output", "result",
                "published", "context", "runtime_context")


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete, for audit logs and rows that only
    services write (used by the tracker and approvals admins too)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyStateAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        model_fields = {f.name for f in self.model._meta.get_fields()}
        state = tuple(f for f in STATE_FIELDS if f in model_fields)
        return tuple(self.readonly_fields) + state + ("id", "created_at", "updated_at")


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "namespace", "input", "created_at", "updated_at")
    search_fields = ("name", "id")
    readonly_fields = ("id", "spec", "checksum", "input", "created_at", "updated_at", "definition")


class TaskInline(admin.TabularInline):
    model = TaskExecution
    fields = ("name", "state", "state_info", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(ReadOnlyStateAdmin):
    list_display = ("id", "workflow_name", "state", "created_at", "updated_at")
    list_filter = ("state", "workflow_name")
    search_fields = ("id", "workflow_name", "description")
    inlines = [TaskInline]
    readonly_fields = ("spec", "input", "params")


@admin.register(TaskExecution)
class TaskExecutionAdmin(ReadOnlyStateAdmin):
    list_display = ("name", "id", "workflow_execution", "state", "started_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("id", "name", "workflow_execution__id")
    raw_id_fields = ("workflow_execution",)


@admin.register(ActionExecution)
class ActionExecutionAdmin(ReadOnlyStateAdmin):
    list_display = ("name", "id", "task_name", "workflow_name", "state", "accepted", "created_at")
    list_filter = ("state", "name", "is_sync")
    search_fields = ("id", "name", "task_name", "workflow_name")
    raw_id_fields = ("task_execution", "workflow_execution")
