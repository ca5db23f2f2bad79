"""Template tags that put approval links, operator buttons and the audit
trail onto the dashboard's execution page, so ``workflows`` code never
imports ``approvals`` (the dependency rule in DESIGN.md)."""

from django import template

from core.states import State
from ops import services as ops
from ops.models import OperatorAction
from ops.selectors import audit_log

register = template.Library()

AUDIT_ROWS = 20
APPROVAL_ACTION = "gust.approval"


@register.inclusion_tag("ops/includes/operator_controls.html", takes_context=True)
def operator_controls(context, action):
    """The approval link of a ``gust.approval`` action, and the buttons a
    RUNNING action offers to whoever may press them."""
    user = context["user"]
    request = context.get("request")
    running = action.state == State.RUNNING
    can_track = running and not action.is_sync and ops.allowed(user, OperatorAction.Kind.TRACK)
    # The reverse one-to-one raises (an AttributeError) when there is no row.
    tracked = getattr(action, "tracking", None) if can_track else None
    return {
        "action": action,
        "is_approval": action.name == APPROVAL_ACTION,
        "can_complete": running and ops.allowed(user, OperatorAction.Kind.COMPLETE_ACTION),
        "can_track": can_track and action.name != APPROVAL_ACTION,
        "tracked": tracked,
        "next": request.path if request else "",
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("ops/includes/audit_trail.html")
def audit_trail(execution_id):
    entries = list(audit_log(execution_id=execution_id)[:AUDIT_ROWS])
    return {"entries": entries, "execution_id": execution_id, "limit": AUDIT_ROWS}
