"""The waiting view's rows: every RUNNING async action, how its result is
expected to arrive, how long it has waited and until when."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from approvals import selectors as approval_reads
from tracker import selectors as tracking
from workflows import selectors
from workflows.models import ActionExecution
from workflows.views import format_duration

APPROVAL_ACTION = "gust.approval"
MODES = [("", "All modes"), ("callback", "callback"), ("poll", "poll"), ("hybrid", "hybrid"), ("approval", "approval")]


def waiting_actions(mode: str = "") -> QuerySet[ActionExecution]:
    qs = selectors.running_async_actions()
    if mode == "approval":
        qs = qs.filter(name=APPROVAL_ACTION)
    elif mode in ("poll", "hybrid"):
        qs = qs.filter(Q(tracking__mode=mode) | Q(input__tracking=mode, tracking__isnull=True))
    elif mode == "callback":
        qs = (
            qs.exclude(name=APPROVAL_ACTION)
            .filter(tracking__isnull=True)
            .filter(Q(input__tracking__isnull=True) | Q(input__tracking="callback"))
        )
    return qs


def decorate(actions: list[ActionExecution]) -> list[dict]:
    ids = [a.id for a in actions]
    tracked = {t.action_id: t for t in tracking.tracking_of(ids)}
    approvals = approval_reads.approvals_of_actions(ids)
    now = timezone.now()
    rows = []
    for a in actions:
        approval = approvals.get(a.id)
        track = tracked.get(a.id)
        if approval is not None or a.name == APPROVAL_ACTION:
            mode = "approval"
        elif track is not None:
            mode = track.mode
        else:
            mode = (a.input or {}).get("tracking") or "callback"
        deadline = approval.expires_at if approval is not None else a.deadline
        rows.append(
            {
                "action": a,
                "execution": a.workflow_execution,
                "mode": mode,
                "tracked": track,
                "approval": approval,
                "age": format_duration(now - a.created_at),
                "deadline": deadline,
                "overdue": bool(deadline and deadline < now),
                "can_track": mode in ("callback", "poll", "hybrid"),
            }
        )
    return rows


def waiting_rows(mode: str = ""):
    return _Lazy(waiting_actions(mode))


class _Lazy:
    """Sliceable like a queryset, but each slice comes back decorated, so
    only one page of rows is ever built."""

    def __init__(self, qs):
        self.qs = qs

    def count(self) -> int:
        return self.qs.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item):
        return decorate(list(self.qs[item]))
