from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Results tracker"

    def ready(self):
        from tracker import actions, latency, remote, services
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
