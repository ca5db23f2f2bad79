"""A batch query function for the simulated outside service (bench/outside.py).

``compare_completion`` registers it for ``gust.http_job`` in the tracker
process it starts (``GUST_TRACKER_QUERIES=gust.http_job=bench.queries.batch_status``,
read into ``TRACKER["QUERIES"]`` by config/settings.py), so that measurements
with 1,000 or 10,000 tracked actions are about the tracker's own cost and not
about 10,000 HTTP GETs per second: the tracker hands it a whole claimed batch
and it asks the service once per ``/jobs`` URL (``POST <url>/status`` with the
action execution ids, which the service indexes by the
``Mistral-Action-Execution-Id`` header of each job).
"""

from __future__ import annotations

import threading

import requests

from tracker.queries import QueryError, QueryResult
from workflows import egress

_local = threading.local()


def _session() -> requests.Session:
    # One keep-alive connection per tracker pool thread.
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = egress.session()  # the tracker's policy holds for this query too
    return s


def batch_status(actions) -> dict:
    """{action id: QueryResult}, or a QueryError for every action of a URL
    whose batch request failed (the tracker backs those off). Ids the service
    does not know are left out: the tracker counts them as still running."""
    by_url: dict[str, list] = {}
    for action in actions:
        base = str(action.input.get("url") or "").rstrip("/")
        by_url.setdefault(f"{base}/status", []).append(action)
    out: dict = {}
    for url, group in by_url.items():
        try:
            resp = _session().post(url, json={"ids": [a.id for a in group]}, timeout=30)
            resp.raise_for_status()
            jobs = resp.json()["jobs"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            error = QueryError(f"batch status query to {url} failed: {exc}")
            out.update({a.id: error for a in group})
            continue
        for action in group:
            job = jobs.get(action.id)
            if job is None or job.get("state") not in ("SUCCESS", "ERROR"):
                continue
            out[action.id] = QueryResult(True, job["state"], job.get("output"), job.get("finished_at"))
    return out


batch_status.many = True
