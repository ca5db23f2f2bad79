"""``settings.TRACKER`` with defaults, read at call time (override_settings works).

QUERY_INTERVAL    seconds between two queries of one action (seed 001: 5)
THREAD_POOL_SIZE  queries in flight at once per tracker process (seed 001: 10)
HYBRID_GRACE      seconds a hybrid action waits for its callback before polling starts
MAX_BACKOFF       longest wait after repeated query errors
BATCH             rows one claim takes at most (a full claim is followed by another at once)
LEASE             seconds after a tracker's last heartbeat (and after its claim) before another
                  tracker may take its rows over (the heartbeat, every second, keeps the lease)
CALLBACK_TTL      seconds a signed callback URL stays valid
HEARTBEAT_EXTENSION  seconds a heartbeat moves an action's deadline forward
INBOX_GIVE_UP     seconds an early callback waits for its action to appear
IN_FLIGHT_WINDOW  seconds after signing during which a token's action may still be
                  uncommitted; later, a token of an action that does not exist is 410
INBOX_MAX         early callbacks waiting at most, in all (more are refused with 429)
PERIODIC          dotted paths called once per cycle (e.g. approval expiry)
QUERIES           {action name: dotted path of a query function} overriding the built-ins
BENCH_RESULTS_DIR where `compare_completion` (and the other benchmark commands) write their
                  results and the comparison page reads them (default: bench/results)
"""

from pathlib import Path
from typing import Any

from django.conf import settings

from workflows.conf import reader

DEFAULTS: dict[str, Any] = {
    "QUERY_INTERVAL": 5.0,
    "THREAD_POOL_SIZE": 10,
    "HYBRID_GRACE": 30.0,
    "MAX_BACKOFF": 300.0,
    "BATCH": 1000,
    "LEASE": 60.0,
    "CALLBACK_TTL": 7 * 24 * 3600.0,
    "HEARTBEAT_EXTENSION": 3600.0,
    "INBOX_GIVE_UP": 600.0,
    "IN_FLIGHT_WINDOW": 120.0,
    "INBOX_MAX": 10_000,
    "PERIODIC": [],
    "QUERIES": {},
    "COMPLETIONS": {},  # the latency rows' retention (tracker.latency.DEFAULTS)
    "BENCH_RESULTS_DIR": None,  # None: bench/results in the project
}

get = reader("TRACKER", DEFAULTS)


def results_dir() -> Path:
    """The benchmark results folder, read at call time like every setting."""
    configured = get("BENCH_RESULTS_DIR")
    return Path(configured) if configured else Path(settings.BASE_DIR) / "bench" / "results"
