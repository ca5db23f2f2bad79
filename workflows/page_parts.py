"""Parts that the apps above ``workflows`` add to the dashboard's execution
page, so its templates name no app above them. The operator console
(``ops``) adds its buttons and the audit trail when it is installed, from
its ``AppConfig.ready``; without it the page shows the execution only.

Slots, and what an included template finds in its context besides the
page's own (``execution``, ``moves``, ``user``, ``perms``, ``request``):

- ``execution``: beside the execution's title (the pause, resume and cancel buttons);
- ``task``: under a task's name (``t``, the task execution; ``row``, its row);
- ``action``: under an action execution's name (``action``);
- ``footer``: after the tasks.
"""

from __future__ import annotations

SLOTS = ("execution", "task", "action", "footer")

_parts: dict[str, list[str]] = {slot: [] for slot in SLOTS}


def add(slot: str, template: str) -> None:
    """Include ``template`` in ``slot`` of every execution page (once, however often it is added)."""
    if slot not in _parts:
        raise ValueError(f"No slot {slot!r} on the execution page; the slots are {', '.join(SLOTS)}")
    if template not in _parts[slot]:
        _parts[slot].append(template)


def execution_page() -> dict[str, tuple[str, ...]]:
    """The templates of each slot, in the order they were added."""
    return {slot: tuple(names) for slot, names in _parts.items()}
