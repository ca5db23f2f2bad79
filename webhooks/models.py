"""The webhook notifier's subscriptions and its delivery log (an outbox)."""

from django.db import models


class Webhook(models.Model):
    """Where the notifier sends trace events. ``events`` empty = all."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, blank=True, help_text='e.g. ["WORKFLOW_SUCCEEDED", "TASK_FAILED"]')
    secret = models.CharField(max_length=200, blank=True, default="", help_text="Signs the body (HMAC-SHA256).")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "tracker_webhook"  # made by the tracker app, which held webhooks before this app

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """The delivery log: one row per (webhook, event), written in the same
    transaction as the change, retried until delivered or given up."""

    STATES = [("PENDING", "PENDING"), ("DELIVERED", "DELIVERED"), ("FAILED", "FAILED")]

    webhook = models.ForeignKey(
        Webhook,
        on_delete=models.CASCADE,
        related_name="deliveries",
        null=True,
        blank=True,
        help_text="Empty for an execution's own params.notify publisher (url, headers).",
    )
    url = models.CharField(max_length=2000, null=True, blank=True, help_text="params.notify: where it goes")
    headers = models.JSONField(null=True, blank=True, help_text="params.notify: the publisher's headers")
    event = models.CharField(max_length=40, db_index=True)
    execution_id = models.CharField(max_length=36, null=True, blank=True, db_index=True)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=STATES, default="PENDING", db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "tracker_webhookdelivery"
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
