"""The inputs of a ``gust.approval`` action, checked once when it starts.

Pure (no Django): ``parse`` turns the evaluated action input into
``ApprovalParams`` or raises ``InvalidParams`` listing every problem, so a
workflow author sees all of them in the action's error at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from approvals import schema

ON_EXPIRY = ("reject", "approve", "escalate")


class InvalidParams(ValueError):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ApprovalParams:
    title: str
    description: str = ""
    form: dict = field(default_factory=dict)
    form_order: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    quorum: int = 1
    reject_on_first: bool = True
    expires_in: int | None = None
    on_expiry: str = "reject"
    escalate_to: list[str] = field(default_factory=list)
    remind_every: int | None = None


def _names(value, what: str, errors: list[str]) -> list[str]:
    """A list of names; a single string (``alice`` or ``alice, bob``) is accepted too."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{what} must be a list of names")
        return []
    seen: dict[str, None] = {}
    for v in value:
        if v.strip():
            seen[v.strip()] = None
    return list(seen)


def _seconds(value, what: str, errors: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        errors.append(f"{what} must be a positive number of seconds, not {value!r}")
        return None
    return max(1, int(value))


def parse(given: dict) -> ApprovalParams:
    errors: list[str] = []
    title = given.get("title")
    if not isinstance(title, str) or not title.strip():
        errors.append("title must be a non-empty string")
        title = ""
    description = given.get("description") or ""
    if not isinstance(description, str):
        errors.append("description must be a string")
        description = ""
    form = given.get("form") or {}
    form_errors = schema.check(form)
    errors += [f"form: {e}" for e in form_errors]
    assignees = _names(given.get("assignees"), "assignees", errors)
    groups = _names(given.get("groups"), "groups", errors)
    if not assignees and not groups and "assignees must be a list of names" not in errors:
        errors.append("give at least one of assignees or groups: nobody could answer")
    quorum = given.get("quorum", 1)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        errors.append(f"quorum must be a whole number of at least 1, not {quorum!r}")
        quorum = 1
    elif not groups and assignees and quorum > len(assignees):
        errors.append(f"quorum {quorum} is more than the {len(assignees)} assignee(s): it could never be reached")
    reject_on_first = given.get("reject_on_first", True)
    if not isinstance(reject_on_first, bool):
        errors.append(f"reject_on_first must be true or false, not {reject_on_first!r}")
    expires_in = _seconds(given.get("expires_in"), "expires_in", errors)
    on_expiry = given.get("on_expiry") or "reject"
    if on_expiry not in ON_EXPIRY:
        errors.append(f"on_expiry must be one of {', '.join(ON_EXPIRY)}, not {on_expiry!r}")
    escalate_to = _names(given.get("escalate_to"), "escalate_to", errors)
    if on_expiry == "escalate" and not escalate_to:
        errors.append("on_expiry: escalate needs escalate_to (usernames or group names)")
    if on_expiry == "escalate" and expires_in is None:
        errors.append("on_expiry: escalate needs expires_in")
    remind_every = _seconds(given.get("remind_every"), "remind_every", errors)
    if errors:
        raise InvalidParams(errors)
    return ApprovalParams(
        title=title.strip(),
        description=description,
        form=form,
        form_order=schema.field_names(form),
        assignees=assignees,
        groups=groups,
        quorum=quorum,
        reject_on_first=reject_on_first,
        expires_in=expires_in,
        on_expiry=on_expiry,
        escalate_to=escalate_to,
        remind_every=remind_every,
    )
