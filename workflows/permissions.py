"""Who may change what: one table for every door (the /v2 API, the dashboard
forms, the operator console), so a user's rights do not depend on which one
they use.

Reading needs a login (when the installation asks for one); every change
needs its permission. Operating executions and completing actions by hand
go through the operator console's services (``ops.services``),
which check ``ops.operate_executions`` / ``ops.complete_actions``
and write the audit row. With ``GUST["API_AUTH"]`` off nobody logs in and
everything is open, as Mistral with ``auth_enable = False``.
"""

from __future__ import annotations

from workflows import conf
from workflows.errors import GustError

START = "workflows.add_workflowexecution"
DELETE_EXECUTION = "workflows.delete_workflowexecution"
EDIT_EXECUTION = "workflows.change_workflowexecution"  # its description
ADD_WORKFLOW = "workflows.add_workflowdefinition"
CHANGE_WORKFLOW = "workflows.change_workflowdefinition"
DELETE_WORKFLOW = "workflows.delete_workflowdefinition"
ADD_ENVIRONMENT = "workflows.add_environment"
CHANGE_ENVIRONMENT = "workflows.change_environment"
DELETE_ENVIRONMENT = "workflows.delete_environment"
ADD_CRON_TRIGGER = "workflows.add_crontrigger"
DELETE_CRON_TRIGGER = "workflows.delete_crontrigger"
RUN_ACTION = "workflows.add_actionexecution"

WHAT = {
    START: "start executions",
    DELETE_EXECUTION: "delete executions",
    EDIT_EXECUTION: "change executions",
    ADD_WORKFLOW: "create workflows",
    CHANGE_WORKFLOW: "change workflows",
    DELETE_WORKFLOW: "delete workflows",
    ADD_ENVIRONMENT: "create environments",
    CHANGE_ENVIRONMENT: "change environments",
    DELETE_ENVIRONMENT: "delete environments",
    ADD_CRON_TRIGGER: "create cron triggers",
    DELETE_CRON_TRIGGER: "delete cron triggers",
    RUN_ACTION: "run actions",
}


class Forbidden(GustError):
    status = 403


def enforced() -> bool:
    return bool(conf.get("API_AUTH"))


def allowed(user, perm: str) -> bool:
    if not enforced():
        return True
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm))


def require(user, *perms: str) -> None:
    """Raise Forbidden naming the first permission ``user`` lacks."""
    for perm in perms:
        if not allowed(user, perm):
            who = user.get_username() if user and user.is_authenticated else "Anonymous"
            raise Forbidden(f"{who} may not {WHAT.get(perm, perm)}: the permission {perm} is needed")
