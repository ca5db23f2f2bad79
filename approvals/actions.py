"""``gust.approval``: the action this app adds to the engine's table."""

from approvals.params import InvalidParams, parse
from core.actions import REQUIRED, ActionDef

PARAMS = (
    ("title", REQUIRED),
    ("description", ""),
    ("form", None),
    ("assignees", None),
    ("groups", None),
    ("quorum", 1),
    ("reject_on_first", True),
    ("expires_in", None),
    ("on_expiry", "reject"),
    ("escalate_to", None),
    ("remind_every", None),
)

APPROVAL = ActionDef(
    "gust.approval",
    "async",
    PARAMS,
    "Asks people to approve or reject in the browser; the result is {approved, data, responses}.",
    waits_forever=True,  # its expiry and escalation end it
    validate=lambda given: _problems(given),
)


def _problems(given: dict) -> list[str]:
    try:
        parse(given)
    except InvalidParams as exc:
        return exc.errors
    return []
