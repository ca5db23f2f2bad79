"""Reads of the tracker's rows for the pages, the operator console and the
metrics, each written once (as ``workflows.selectors`` for the executions).
They never write; the tracker's services and its loop do."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Max, QuerySet

from tracker.models import Completion, TrackedAction, TrackerProcess


def tracking_of(action_ids: Iterable[str]) -> QuerySet[TrackedAction]:
    """The tracking rows of these actions (an action without one is not tracked)."""
    return TrackedAction.objects.filter(action_id__in=action_ids)


def past_due(now: datetime) -> QuerySet[TrackedAction]:
    """Tracked actions whose next query time has come, leased or not."""
    return TrackedAction.objects.filter(next_query_at__lte=now).order_by()


def last_completion_id() -> int:
    """The id of the newest completion latency row, 0 when there is none."""
    return Completion.objects.aggregate(m=Max("id"))["m"] or 0


def last_heartbeat() -> datetime | None:
    """When a tracker process last reported, None when none ever did."""
    return TrackerProcess.objects.aggregate(m=Max("last_seen"))["m"]
