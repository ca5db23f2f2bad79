"""Admin for the operator audit log: read-only, its rows are audit records."""

from django.contrib import admin

from ops.models import OperatorAction
from workflows.admin import ReadOnlyAdmin


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "kind", "summary", "execution_id")
    list_filter = ("kind", "username")
    search_fields = ("summary", "execution_id", "target_id", "username")
    date_hierarchy = "at"
