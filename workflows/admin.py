"""Django admin for every Gust model. Executions, tasks and action
executions are shown, never changed here: a state changes only through
``workflows.services`` (the dashboard and the API offer pause, resume,
cancel, rerun and action completion), and each of their pages links to the
dashboard page that has those buttons. Their lists read through
``workflows.selectors``, as the /v2 lists and the dashboard's do."""

from django.contrib import admin
from django.db.models import QuerySet
from django.urls import reverse

from workflows import selectors
from workflows.models import (
    ActionDefinition,
    ActionExecution,
    CronTrigger,
    Environment,
    TaskExecution,
    Workbook,
    WorkflowDefinition,
    WorkflowExecution,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: no add, change or delete, for audit logs and rows that only
    services write (used by the tracker and approvals admins too)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EngineRowAdmin(ReadOnlyAdmin):
    """Rows the engine writes. Saving or deleting one here would skip the
    execution lock, the next tasks, the trace lines and the audit log, so the
    change page offers the dashboard page instead."""

    change_form_template = "admin/workflows/engine_row_change_form.html"

    def dashboard_url(self, obj) -> str | None:
        raise NotImplementedError

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["dashboard_url"] = self.dashboard_url(obj) if obj is not None else None
        return super().render_change_form(request, context, add, change, form_url, obj)


def _execution_page(execution_id: str | None, task_name: str | None = None) -> str | None:
    if execution_id is None:
        return None  # an action run on its own (POST /v2/action_executions) has no page
    url = reverse("dashboard:execution", kwargs={"execution_id": execution_id})
    return f"{url}#task-{task_name}" if task_name else url


def _admin_rows(rows: QuerySet) -> QuerySet:
    """A selector's rows in the admin's own order (its columns, else the
    model's): Django would add the selector's order after the admin's."""
    return rows.order_by()


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "namespace", "input", "created_at", "updated_at")
    search_fields = ("name", "id")
    readonly_fields = ("id", "spec", "checksum", "input", "created_at", "updated_at", "definition")

    def get_queryset(self, request):
        return _admin_rows(selectors.workflows())


@admin.register(Workbook)
class WorkbookAdmin(ReadOnlyAdmin):
    """Read-only: a workbook's text is its workflows and actions, which only
    ``workflows.books`` keeps in step (the API, the CLI)."""

    list_display = ("name", "namespace", "created_at", "updated_at")
    search_fields = ("name", "id")

    def get_queryset(self, request):
        return _admin_rows(selectors.workbooks())


@admin.register(ActionDefinition)
class ActionDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("name", "namespace", "workbook_name", "input", "created_at", "updated_at")
    search_fields = ("name", "id")

    def get_queryset(self, request):
        return _admin_rows(selectors.adhoc_actions())


class TaskInline(admin.TabularInline):
    model = TaskExecution
    fields = ("name", "state", "state_info", "started_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(EngineRowAdmin):
    list_display = ("id", "workflow_name", "state", "created_at", "updated_at")
    list_filter = ("state", "workflow_name")
    search_fields = ("id", "workflow_name", "description")
    inlines = [TaskInline]

    def get_queryset(self, request):
        return selectors.all_executions()

    def dashboard_url(self, obj):
        return _execution_page(obj.id)


@admin.register(TaskExecution)
class TaskExecutionAdmin(EngineRowAdmin):
    list_display = ("name", "id", "workflow_execution", "state", "started_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("id", "name", "workflow_execution__id")

    def get_queryset(self, request):
        return selectors.all_tasks()

    def dashboard_url(self, obj):
        return _execution_page(obj.workflow_execution_id, obj.name)


@admin.register(ActionExecution)
class ActionExecutionAdmin(EngineRowAdmin):
    list_display = ("name", "id", "task_name", "workflow_name", "state", "accepted", "created_at")
    list_filter = ("state", "name", "is_sync")
    search_fields = ("id", "name", "task_name", "workflow_name")

    def get_queryset(self, request):
        return selectors.all_action_executions()

    def dashboard_url(self, obj):
        return _execution_page(obj.workflow_execution_id, obj.task_name)


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    """Changed through /v2/environments (``mistral environment-update``), which checks the variables."""

    list_display = ("name", "description", "scope", "created_at", "updated_at")
    search_fields = ("name", "id")

    def get_queryset(self, request):
        return _admin_rows(selectors.environments())


@admin.register(CronTrigger)
class CronTriggerAdmin(ReadOnlyAdmin):
    """Created and deleted through /v2/cron_triggers; only the timer loop moves ``next_execution_time``."""

    list_display = ("name", "workflow_name", "pattern", "next_execution_time", "remaining_executions", "created_at")
    search_fields = ("name", "id", "workflow_name")

    def get_queryset(self, request):
        return _admin_rows(selectors.cron_triggers())
