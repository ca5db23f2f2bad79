"""Django admin for the tracker app: tracked actions, early callbacks,
tracker processes and completion latency rows are shown read-only, because
their rows change only through the tracker (the one editable tuning knob is
a tracked action's query interval)."""

from django.contrib import admin

from tracker.models import (
    BenchmarkRun,
    CallbackInbox,
    Completion,
    CompletionBucket,
    TrackedAction,
    TrackerProcess,
)
from workflows.admin import ReadOnlyAdmin


@admin.register(TrackedAction)
class TrackedActionAdmin(admin.ModelAdmin):
    list_display = (
        "action",
        "mode",
        "query_interval",
        "next_query_at",
        "queries",
        "errors",
        "claimed_by",
        "added_by",
        "created_at",
    )
    list_filter = ("mode", "added_by")
    search_fields = ("=action__id", "action__workflow_execution__id", "action__name")
    raw_id_fields = ("action",)
    fields = (
        "action",
        "mode",
        "query_interval",
        "grace",
        "next_query_at",
        "scheduled",
        "claimed_by",
        "claimed_until",
        "queries",
        "errors",
        "last_error",
        "last_query_at",
        "added_by",
        "created_at",
    )
    readonly_fields = tuple(f for f in fields if f != "query_interval")

    def has_add_permission(self, request):
        return False  # tracking starts from the engine or `manage.py track_result`

    def has_delete_permission(self, request, obj=None):
        return False  # stop tracking with `manage.py track_result <id> --delete`


@admin.register(CallbackInbox)
class CallbackInboxAdmin(ReadOnlyAdmin):
    list_display = ("id", "action_id", "attempt", "state", "received_at", "applied_at", "outcome")
    list_filter = ("state", ("applied_at", admin.EmptyFieldListFilter))
    search_fields = ("=action_id",)


@admin.register(TrackerProcess)
class TrackerProcessAdmin(ReadOnlyAdmin):
    list_display = (
        "name",
        "started_at",
        "last_seen",
        "stopped_at",
        "query_interval",
        "thread_pool_size",
        "queries",
        "completions",
        "errors",
    )
    list_filter = (("stopped_at", admin.EmptyFieldListFilter),)
    search_fields = ("name",)


@admin.register(Completion)
class CompletionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "mode",
        "door",
        "action_name",
        "action_id",
        "outside_done_at",
        "detected_at",
        "recorded_at",
        "polls",
        "interval",
        "statements",
        "rolled_up",
    )
    list_filter = ("mode", "door", "rolled_up")
    search_fields = ("=action_id", "=execution_id", "action_name")
    date_hierarchy = "detected_at"


@admin.register(CompletionBucket)
class CompletionBucketAdmin(ReadOnlyAdmin):
    list_display = ("minute", "span", "mode", "action_name", "count", "polls", "polled", "statements")
    list_filter = ("span", "mode")
    search_fields = ("action_name",)
    date_hierarchy = "minute"


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(ReadOnlyAdmin):
    """Runs of the comparison page's button (tracker.benchmarks)."""

    list_display = ("id", "state", "requested_by", "progress", "step", "created_at", "finished_at")
    list_filter = ("state",)
