from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks and notifications: Gust's subscriptions (``Webhook``), an
    execution's own ``params.notify`` publishers (Mistral's notifications)
    and the delivery outbox both go through (``webhooks.notifier``)."""

    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from webhooks import receivers
        from webhooks.models import Webhook
        from workflows import signals

        # Trace events become outbox rows in the same transaction.
        signals.execution_events.connect(receivers.on_execution_events, dispatch_uid="webhooks.execution_events")
        # A webhook added or removed in this process counts at once (see notifier._active_webhooks).
        post_save.connect(receivers.on_webhook_changed, sender=Webhook, dispatch_uid="webhooks.webhook_saved")
        post_delete.connect(receivers.on_webhook_changed, sender=Webhook, dispatch_uid="webhooks.webhook_deleted")
