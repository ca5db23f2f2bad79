"""When is an approval decided? Pure, so every quorum rule is tested without a database."""

from __future__ import annotations

APPROVED, REJECTED = "APPROVED", "REJECTED"


def decide(*, quorum: int, reject_on_first: bool, approvals: int, rejections: int, can_still_answer: int) -> str | None:
    """APPROVED, REJECTED or None (keep waiting).

    - ``quorum`` approvals approve;
    - with ``reject_on_first`` one rejection rejects;
    - otherwise it is rejected as soon as the quorum can no longer be
      reached by the people who have not answered yet (``can_still_answer``).
    """
    if approvals >= quorum:
        return APPROVED
    if rejections and reject_on_first:
        return REJECTED
    if approvals + can_still_answer < quorum:
        return REJECTED
    return None
