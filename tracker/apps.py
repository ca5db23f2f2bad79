from django.apps import AppConfig


class TrackerConfig(AppConfig):
    name = "tracker"
    verbose_name = "Results tracker"

    def ready(self):
        from tracker import services
        from workflows import signals

        signals.async_action_started.connect(
            services.on_async_action_started, dispatch_uid="tracker.track_async_action"
        )
        signals.action_finished.connect(services.on_action_finished, dispatch_uid="tracker.untrack_finished_action")
