from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals and operator actions"

    def ready(self):
        from approvals import receivers
        from approvals.actions import APPROVAL
        from core import actions
        from workflows import signals

        actions.register(APPROVAL)

        signals.async_action_started.connect(
            receivers.on_async_action_started, dispatch_uid="approvals.open_for_action"
        )
        signals.action_finished.connect(receivers.on_action_finished, dispatch_uid="approvals.close_for_action")
