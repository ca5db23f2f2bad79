"""The one place where ``workflows`` tells other apps what happened, without
importing them (``tracker`` and ``approvals`` connect receivers in their
``AppConfig.ready()``, each with a ``dispatch_uid``).

All three are sent by ``workflows.services`` *inside* the transaction that
made the change, so a receiver's own rows commit or roll back with it; side
effects that leave the database must be registered with
``transaction.on_commit`` by the receiver.
"""

from django.dispatch import Signal

# An async action execution (``is_sync`` False) was created RUNNING.
# kwargs: action (ActionExecution row)
async_action_started = Signal()

# An action execution reached SUCCESS, ERROR or CANCELLED.
# kwargs: action (ActionExecution row)
action_finished = Signal()

# Trace events of one committed change. kwargs: execution_id, workflow_name,
# events (list of core.engine.TraceEvent), execution (the row, as saved)
execution_events = Signal()
