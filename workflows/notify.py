"""``params.notify``: Mistral's execution notification publishers (pure).

An execution started with ``params.notify`` sends its workflow events to
each publisher, as Mistral does (mistral/engine/workflows.py ``_notify``):

    {"notify": [{"type": "webhook", "url": "https://...", "headers": {...},
                 "event_types": ["WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED"]}]}

``type`` is ``webhook`` (POST the execution as JSON) or ``noop``; no
``event_types`` means every workflow event. The body is Mistral's: the
execution's ``id``, ``name``, ``workflow_name``, ``workflow_namespace``,
``workflow_id``, ``state``, ``state_info``, ``project_id``,
``task_execution_id``, ``root_execution_id``, ``created_at``, ``updated_at``
and ``event``. The tracker's notifier delivers it after commit, with retries.

Mistral skips a publisher it can not use; Gust refuses it when the execution
starts, with every problem named.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

# Mistral's workflow events (mistral/notifiers/notification_events.py).
WORKFLOW_EVENTS = (
    "WORKFLOW_LAUNCHED",
    "WORKFLOW_SUCCEEDED",
    "WORKFLOW_FAILED",
    "WORKFLOW_CANCELLED",
    "WORKFLOW_PAUSED",
    "WORKFLOW_RESUMED",
    "WORKFLOW_RERUN",
)
TYPES = ("webhook", "noop")
MAX_PUBLISHERS = 10
MAX_URL = 2000
MAX_HEADERS = 50
MAX_HEADER = 8192


def check(notify: Any) -> list[str]:
    """Every problem of a ``params.notify`` value, each with its path."""
    if not isinstance(notify, list):
        return [f"params.notify must be a list of publishers, not {type(notify).__name__}"]
    if len(notify) > MAX_PUBLISHERS:
        return [f"params.notify has {len(notify)} publishers; at most {MAX_PUBLISHERS}"]
    problems = []
    for i, pub in enumerate(notify):
        where = f"params.notify[{i}]"
        if not isinstance(pub, dict):
            problems.append(f"{where} must be an object")
            continue
        unknown = sorted(set(pub) - {"type", "url", "headers", "event_types"})
        if unknown:
            problems.append(f"{where}: unexpected key(s) {', '.join(unknown)}")
        if pub.get("type") not in TYPES:
            problems.append(f"{where}.type must be {' | '.join(TYPES)}, not {pub.get('type')!r}")
        events = pub.get("event_types", [])
        if not isinstance(events, list) or any(e not in WORKFLOW_EVENTS for e in events):
            problems.append(f"{where}.event_types must be a list of {', '.join(WORKFLOW_EVENTS)}")
        if pub.get("type") != "webhook":
            continue
        url = pub.get("url")
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}.url must be an http(s) URL of at most {MAX_URL} characters")
        headers = pub.get("headers", {})
        if (
            not isinstance(headers, dict)
            or len(headers) > MAX_HEADERS
            or any(
                not isinstance(k, str)
                or not isinstance(v, str)
                or len(k) + len(v) > MAX_HEADER
                or "\n" in k + v
                or "\r" in k + v
                for k, v in headers.items()
            )
        ):
            problems.append(f"{where}.headers must be an object of at most {MAX_HEADERS} one-line text values")
    return problems


def publishers_for(notify: Any, event: str) -> list[dict]:
    """The webhook publishers of a checked ``params.notify`` that take ``event``."""
    if not isinstance(notify, list):
        return []
    return [
        p
        for p in notify
        if isinstance(p, dict)
        and p.get("type") == "webhook"
        and (not p.get("event_types") or event in p["event_types"])
    ]
