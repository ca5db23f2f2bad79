from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from config import metrics
        from workflows import retention, signals  # noqa: F401 -- retention registers its settings check

        signals.execution_events.connect(metrics.on_execution_events, dispatch_uid="config.metrics.transitions")
