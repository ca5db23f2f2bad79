"""Django admin for the tracker app: webhooks are edited here; the delivery
log, tracked actions, early callbacks and tracker processes are shown
read-only, because their rows change only through the notifier and the
tracker (the one editable tuning knob is a tracked action's query interval)."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q

from tracker import notifier
from tracker.models import (
    BenchmarkRun,
    CallbackInbox,
    Completion,
    CompletionBucket,
    TrackedAction,
    TrackerProcess,
    Webhook,
    WebhookDelivery,
)
from workflows.admin import ReadOnlyAdmin


class WebhookForm(forms.ModelForm):
    class Meta:
        model = Webhook
        fields = ("url", "events", "secret", "active")

    def clean_events(self):
        events = self.cleaned_data["events"] or []
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            raise forms.ValidationError(
                'A JSON list of event names, e.g. ["WORKFLOW_SUCCEEDED", "TASK_FAILED"]; [] = all.'
            )
        return events


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    # Deleting a webhook would also delete its delivery log, which is not
    # deletable here: the admin refuses, so deactivate it instead.
    form = WebhookForm
    list_display = ("url", "active", "events", "pending", "failed", "created_at")
    list_filter = ("active",)
    search_fields = ("url",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_pending=Count("deliveries", filter=Q(deliveries__state=notifier.PENDING)),
            n_failed=Count("deliveries", filter=Q(deliveries__state=notifier.FAILED)),
        )

    @admin.display(ordering="n_pending")
    def pending(self, obj):
        return obj.n_pending

    @admin.display(ordering="n_failed")
    def failed(self, obj):
        return obj.n_failed


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "webhook", "execution_id", "state", "attempts", "last_status",
                    "next_attempt_at", "delivered_at", "created_at")
    list_filter = ("state", "event", "webhook")
    search_fields = ("=execution_id", "=id", "last_error")
    date_hierarchy = "created_at"
    list_select_related = ("webhook",)
    actions = ["send_again"]

    @admin.action(description="Send the selected FAILED deliveries again", permissions=["resend"])
    def send_again(self, request, queryset):
        count = notifier.requeue(queryset.values_list("id", flat=True))
        self.message_user(request, f"{count} delivery(ies) queued again.", messages.SUCCESS)

    def has_resend_permission(self, request):
        return request.user.has_perm("tracker.change_webhook")


@admin.register(TrackedAction)
class TrackedActionAdmin(admin.ModelAdmin):
    list_display = ("action", "mode", "query_interval", "next_query_at", "queries", "errors", "claimed_by",
                    "added_by", "created_at")
    list_filter = ("mode", "added_by")
    search_fields = ("=action__id", "action__workflow_execution__id", "action__name")
    raw_id_fields = ("action",)
    fields = ("action", "mode", "query_interval", "grace", "next_query_at", "scheduled", "claimed_by",
              "claimed_until", "queries", "errors", "last_error", "last_query_at", "added_by", "created_at")
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
    list_display = ("name", "started_at", "last_seen", "stopped_at", "query_interval", "thread_pool_size",
                    "queries", "completions", "errors")
    list_filter = (("stopped_at", admin.EmptyFieldListFilter),)
    search_fields = ("name",)


@admin.register(Completion)
class CompletionAdmin(ReadOnlyAdmin):
    list_display = ("id", "mode", "door", "action_name", "action_id", "outside_done_at", "detected_at", "recorded_at",
                    "polls", "interval", "statements", "rolled_up")
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
