from django.apps import AppConfig


class OpsConfig(AppConfig):
    """The operator console: pause, resume and cancel executions, rerun and
    skip tasks, complete actions by hand, start and stop tracking; each
    behind its own permission (``ops.*``) and audited. Also what operators
    watch: the Prometheus metrics (``ops.metrics``)."""

    name = "ops"
    verbose_name = "Operator console"

    def ready(self):
        from ops import metrics
        from workflows import page_parts, signals

        signals.execution_events.connect(metrics.on_execution_events, dispatch_uid="ops.metrics.transitions")
        for slot in page_parts.SLOTS:  # the buttons and the audit trail on the execution page
            page_parts.add(slot, f"ops/parts/{slot}.html")
