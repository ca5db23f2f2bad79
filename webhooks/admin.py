"""Django admin for webhooks: subscriptions are edited here; the delivery log
is read-only, because its rows change only through the notifier."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q

from webhooks import notifier
from webhooks.models import Webhook, WebhookDelivery
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
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_pending=Count("deliveries", filter=Q(deliveries__state=notifier.PENDING)),
                n_failed=Count("deliveries", filter=Q(deliveries__state=notifier.FAILED)),
            )
        )

    @admin.display(ordering="n_pending")
    def pending(self, obj):
        return obj.n_pending

    @admin.display(ordering="n_failed")
    def failed(self, obj):
        return obj.n_failed


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event",
        "webhook",
        "execution_id",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
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
        return request.user.has_perm("webhooks.change_webhook")
