from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Results tracker"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from tracker import actions, latency, receivers, remote, services
        from tracker.models import Webhook
        from workflows import signals

        actions.register()

        signals.async_action_started.connect(
            services.on_async_action_started, dispatch_uid="tracker.track_async_action"
        )
        signals.action_finished.connect(services.on_action_finished, dispatch_uid="tracker.untrack_finished_action")
        # How each async action's result came back, and its timings (tracker.latency).
        signals.action_finished.connect(latency.record, dispatch_uid="tracker.latency.record")
        # A cancelled mistral.workflow cancels its remote execution (tracker.remote).
        signals.action_finished.connect(remote.on_action_finished, dispatch_uid="tracker.remote.cancel")

        # The webhook notifier: trace events become outbox rows in the same transaction.
        signals.execution_events.connect(
            receivers.on_execution_events, dispatch_uid="tracker.notifier.execution_events"
        )
        # A webhook added or removed in this process counts at once (see notifier._active_webhooks).
        post_save.connect(receivers.on_webhook_changed, sender=Webhook, dispatch_uid="tracker.notifier.webhook_saved")
        post_delete.connect(
            receivers.on_webhook_changed, sender=Webhook, dispatch_uid="tracker.notifier.webhook_deleted"
        )
