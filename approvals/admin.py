"""Admin for approvals: read-only. Approvals change only through
``approvals.services`` (the pages and the REST API); responses are audit
records."""

from django.contrib import admin

from approvals.models import Approval, ApprovalResponse, Assignment
from workflows.admin import ReadOnlyAdmin


class AssignmentInline(admin.TabularInline):
    model = Assignment
    fields = ("kind", "name", "via")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ResponseInline(AssignmentInline):
    model = ApprovalResponse
    fields = ("at", "username", "decision", "comment", "data")
    readonly_fields = fields


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ("title", "status", "workflow_name", "task_name", "quorum", "expires_at", "created_at")
    list_filter = ("status", "on_expiry", "workflow_name")
    search_fields = ("id", "title", "workflow_name", "execution_id")
    inlines = [AssignmentInline, ResponseInline]


@admin.register(ApprovalResponse)
class ApprovalResponseAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "decision", "approval")
    list_filter = ("decision",)
    search_fields = ("username", "approval__title", "approval__id")
