"""Probes for a load balancer or an orchestrator, without a login.

``/healthz`` says only that this process answers HTTP (liveness: restart it
when this fails). ``/readyz`` says whether it can do its work: the database
and the worker broker both answer (readiness: send it traffic only then).
Neither reveals anything beyond up/down and which dependency is down; the
reason names the failing component and the exception's class, not its text,
which may carry a host name or a user.
"""

from __future__ import annotations

import time
from functools import lru_cache

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

PROBE_TIMEOUT_S = 2.0  # a broker that does not answer within this is "not ready", never a hung probe


@never_cache
@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    checks = {"database": _check(database_reachable), "broker": _check(broker_reachable)}
    failed = {name: reason for name, reason in checks.items() if reason != "ok"}
    body = {"status": "ok" if not failed else "unavailable", "checks": checks}
    if failed:
        body["reason"] = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
    return JsonResponse(body, status=503 if failed else 200)


def _check(probe) -> str:
    start = time.monotonic()
    try:
        probe()
    except Exception as exc:  # any failure is "not ready", with its kind
        return f"unreachable ({type(exc).__name__})"
    elapsed = time.monotonic() - start
    return "ok" if elapsed <= PROBE_TIMEOUT_S else f"too slow ({elapsed:.1f} s)"


def database_reachable() -> None:
    """One round trip on this thread's connection (kept between requests);
    a connection broken since the last request is opened again first."""
    conn = connections["default"]
    if conn.connection is not None and not conn.is_usable():
        conn.close()
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def broker_reachable() -> None:
    """The ORM broker lives in the database just checked; Redis is pinged
    with a client of its own that gives up after PROBE_TIMEOUT_S."""
    url = settings.Q_CLUSTER.get("redis")
    if url:
        _redis_client(url if isinstance(url, str) else None).ping()


@lru_cache(maxsize=4)
def _redis_client(url: str | None):
    import redis

    kwargs = dict(socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S)
    if url is None:  # django-q2 also accepts a dict of connection arguments
        return redis.Redis(**{**settings.Q_CLUSTER["redis"], **kwargs})
    return redis.Redis.from_url(url, **kwargs)
