"""Signal receivers of the notifier, connected in ``TrackerConfig.ready()``.

``on_execution_events`` runs inside the transaction of the change that sent
the signal: its rows commit or roll back with it, and the HTTP requests wait
for ``transaction.on_commit``.
"""

from django.db import transaction

from webhooks import notifier


def on_execution_events(sender, execution_id, workflow_name, events, execution=None, **kwargs):
    """Trace events -> webhook outbox rows (see ``webhooks.notifier``), and
    the execution's own ``params.notify`` webhooks (Mistral's notifications)."""
    notifier.record_trace(workflow_name, events)
    if execution is not None and execution.params and execution.params.get("notify"):
        notifier.record_notify(execution, events)


def on_webhook_changed(sender, **kwargs):
    notifier.forget_webhooks()
    # Another thread may learn "no webhook" again before this change commits.
    transaction.on_commit(notifier.forget_webhooks)
