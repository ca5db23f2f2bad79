"""A batch query function for the simulated outside service (bench/outside.py).

``compare_completion`` registers it for ``gust.http_job`` in the tracker
process it starts (``GUST_TRACKER_QUERIES=gust.http_job=bench.queries.batch_status``,
read into ``TRACKER["QUERIES"]`` by config/settings.py), so that measurements
with 1,000 or 10,000 tracked actions are about the tracker's own cost and not
about 10,000 HTTP GETs per second: the tracker hands it a batch of due actions
and it asks the service once per ``/jobs`` URL (``POST <url>/status`` with the
action execution ids, which the service indexes by the
``Mistral-Action-Execution-Id`` header of each job).
"""

from __future__ import annotations

from tracker import http
from tracker.queries import QueryError, QueryResult
from workflows import egress


def batch_status(actions) -> dict:
    """{action id: QueryResult}, or a QueryError for every action of a URL
    whose batch request failed (the tracker backs those off). Ids the service
    does not know, and jobs still running, are left out: the tracker counts
    them as still running. One POST per ``/jobs`` URL, on the tracker
    thread's kept connection (``tracker.http``: the egress policy holds)."""
    by_url: dict[str, list] = {}
    for action in actions:
        by_url.setdefault(action.input.get("url") or "", []).append(action)
    out: dict = {}
    for base, group in by_url.items():
        url = f"{str(base).rstrip('/')}/status"
        try:
            jobs = http.post_json(url, {"ids": [a.id for a in group]}, timeout=30)["jobs"]
        except (http.StatusError, egress.EgressRefused, KeyError, TypeError) as exc:
            error = QueryError(f"batch status query to {url} failed: {exc}")
            out.update({a.id: error for a in group})
            continue
        for aid, job in jobs.items():
            state = job.get("state")
            if state == "SUCCESS" or state == "ERROR":
                out[aid] = QueryResult(True, state, job.get("output"), job.get("finished_at"))
    return out


batch_status.many = True
