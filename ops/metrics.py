"""Prometheus metrics at ``/metrics``, with prometheus_client.

django-prometheus (2.5.0, the newest) requires Django < 6.1 and Gust runs
6.1, so the client library is used directly; it is what django-prometheus
wraps anyway.

- ``gust_transitions_total{scope, event}``: trace events (task and workflow
  state changes) counted from ``workflows.signals.execution_events`` once
  their transaction commits, in whichever process made them (web, worker,
  tracker).
- ``gust_executions{state}``, ``gust_worker_queue_depth``,
  ``gust_tracker_due_items`` and ``gust_tracker_lag_seconds`` (how long the
  oldest due tracked action has waited for its query): read from the
  database and the broker at scrape time, so they are the same whichever
  process answers.

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (``bin/prod`` sets
it for all its processes) every process writes its counters to files there
and a scrape of any gunicorn worker adds them all up (prometheus_client's
multiprocess mode). Without it a scrape shows only the answering process's
own counters.

Access as the rest of Gust: a login (session or API token), or
``Authorization: Bearer $GUST_METRICS_TOKEN``; open only when the
installation is (``GUST_API_AUTH=0``) and no metrics token is set.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections import Counter as Tally

from django.db import transaction
from django.db.models import Count, Min
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from ops import conf as ops_conf
from workflows import conf as wf_conf

logger = logging.getLogger("gust.metrics")

TRANSITIONS = Counter(
    "gust_transitions",
    "Task and workflow state changes (trace events), counted when their transaction commits.",
    ["scope", "event"],
)
EXECUTION_STATES = ("IDLE", "RUNNING", "PAUSED", "SUCCESS", "ERROR", "CANCELLED")


def on_execution_events(sender, execution_id=None, workflow_name=None, events=(), **kwargs):
    """``execution_events`` receiver: count on commit, so a rolled-back change is not counted."""
    tally = Tally(_event_labels(e) for e in events)
    if tally:
        transaction.on_commit(lambda: _count(tally))


def _event_labels(event) -> tuple[str, str]:
    kind = str(getattr(event, "kind", "") or "UNKNOWN")
    return ("task" if kind.startswith("TASK_") else "workflow"), kind


def _count(tally: Tally) -> None:
    for (scope, event), n in tally.items():
        TRANSITIONS.labels(scope, event).inc(n)


class GustCollector:
    """The gauges read at scrape time. A source that fails (the broker is
    down) is left out and logged, so the rest of the scrape still answers."""

    def collect(self):
        for build in (_executions, _queue_depth, _tracker):
            try:
                yield from build()
            except Exception:
                logger.exception("metrics: %s failed", build.__name__)


def _executions():
    from workflows import selectors

    family = GaugeMetricFamily("gust_executions", "Workflow executions by state.", labels=["state"])
    counts = dict.fromkeys(EXECUTION_STATES, 0)
    counts.update(selectors.execution_counts())
    for state, n in counts.items():
        family.add_metric([state], n)
    yield family


def _queue_depth():
    from workflows import queue

    yield GaugeMetricFamily(
        "gust_worker_queue_depth",
        "Worker jobs waiting in the broker (not yet taken by a worker).",
        value=queue.broker().queue_size(),
    )


def _tracker():
    from tracker import selectors as tracking

    now = timezone.now()
    stats = tracking.past_due(now).aggregate(n=Count("id"), oldest=Min("next_query_at"))
    lag = (now - stats["oldest"]).total_seconds() if stats["oldest"] else 0.0
    yield GaugeMetricFamily("gust_tracker_due_items", "Tracked actions whose next query is due.", value=stats["n"])
    yield GaugeMetricFamily(
        "gust_tracker_lag_seconds", "Age of the oldest due tracked action (0 when none is due).", value=max(lag, 0.0)
    )


def render(multiproc_dir: str | None = None) -> bytes:
    """The exposition text: this process's registry, or every process's
    counters from ``multiproc_dir``, plus the gauges read now."""
    multiproc_dir = multiproc_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = CollectorRegistry()
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(GustCollector())
    return generate_latest(registry)


class _Forward:
    """The default registry's metrics (process, platform, gust counters) inside a per-scrape registry."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


@never_cache
def metrics(request):
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"faultstring": "Method not allowed"}, status=405, headers={"Allow": "GET, HEAD"})
    if not allowed(request):
        return JsonResponse(
            {"faultstring": "Metrics need a login, an API token or the metrics bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="gust-metrics"'},
        )
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def allowed(request) -> bool:
    token = ops_conf.get("METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        return True
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        return True
    if _api_token_user(request) is not None:
        return True
    return not wf_conf.get("API_AUTH") and not token


def _api_token_user(request):
    """A valid X-Auth-Token / ``Authorization: Token`` of an active user, as the /v2 API takes."""
    from rest_framework.exceptions import AuthenticationFailed

    from workflows.auth import XAuthTokenAuthentication

    try:
        found = XAuthTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return found[0] if found else None
