"""Receivers of ``workflows.signals``, connected in ``ApprovalsConfig.ready()``.

Both run inside the engine's transaction: the approval rows commit or roll
back with the change that started or ended the action.
"""

from approvals import services


def on_async_action_started(sender, action, **kwargs):
    services.open_for_action(action)


def on_action_finished(sender, action, **kwargs):
    services.close_for_action(action)
