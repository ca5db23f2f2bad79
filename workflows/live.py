"""Live dashboard pages: server-sent events that say "this changed".

A page region marked ``data-live`` (see ``static/live.js``) opens an
EventSource on one of these streams. The stream compares a cheap
fingerprint of what the page shows (one indexed query) every ``TICK``
seconds and sends ``event: change`` when it differs; the browser then
fetches the region's HTML again (same URL, header ``X-Gust-Live: 1``) and
swaps it in. Every engine change saves the execution row, so its
``updated_at`` and state are enough for the detail page.

A stream holds one server thread, so it ends after ``LIVE_STREAM_SECONDS``
(the browser reconnects, sending the last fingerprint as ``Last-Event-ID``
so nothing is missed in between), and at most ``LIVE_MAX_STREAMS`` are open
per process; over that the stream answers ``event: busy`` and the page
falls back to polling the region every few seconds.

Settings, read at call time from ``settings.GUST`` (workflows.conf): LIVE_TICK (0.5 s),
LIVE_STREAM_SECONDS (15), LIVE_MAX_STREAMS (2 per process: gunicorn runs
4 threads per worker in ``bin/run``), LIVE_KEEPALIVE (5 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from workflows import conf, selectors
from workflows.models import WorkflowExecution

_lock = threading.Lock()
_open_streams = 0


def open_streams() -> int:
    return _open_streams


def _fingerprint(updated_at, state) -> str:
    return f"{updated_at.timestamp():.6f}-{state}"


def fingerprint_of(execution: WorkflowExecution) -> str:
    return _fingerprint(execution.updated_at, execution.state)


def execution_fingerprint(execution_id: str) -> str | None:
    row = selectors.execution_stamp(execution_id)
    return None if row is None else _fingerprint(*row)


def list_fingerprint() -> str:
    n, last = selectors.executions_stamp()
    return f"{n}-{last.timestamp() if last else 0:.6f}"


def _claim() -> bool:
    global _open_streams
    with _lock:
        if _open_streams >= int(conf.get("LIVE_MAX_STREAMS")):
            return False
        _open_streams += 1
        return True


def _release() -> None:
    global _open_streams
    with _lock:
        _open_streams -= 1


def _events(fingerprint: Callable[[], str | None], since: str) -> Iterator[str]:
    # The slot is taken inside the generator: a response that is never
    # iterated (client gone) must not hold one forever.
    if not _claim():
        yield "retry: 60000\nevent: busy\ndata: too many live pages open; polling instead\n\n"
        return
    try:
        yield "retry: 500\n\n"
        tick, keepalive = float(conf.get("LIVE_TICK")), float(conf.get("LIVE_KEEPALIVE"))
        end = time.monotonic() + float(conf.get("LIVE_STREAM_SECONDS"))
        last, quiet_since = since, time.monotonic()
        while time.monotonic() < end:
            current = fingerprint()
            if current is None:
                yield "event: gone\ndata: \n\n"
                return
            if current != last:
                last, quiet_since = current, time.monotonic()
                yield f"id: {current}\nevent: change\ndata: {current}\n\n"
            elif time.monotonic() - quiet_since >= keepalive:
                # A comment line: lets the server notice a closed page soon.
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(tick)
    finally:
        _release()


def _stream(request, fingerprint: Callable[[], str | None]) -> StreamingHttpResponse:
    since = request.headers.get("Last-Event-ID") or request.GET.get("since", "")
    response = StreamingHttpResponse(_events(fingerprint, since), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx must not hold the events back
    return response


@require_GET
def execution_events(request, execution_id: str):
    return _stream(request, lambda: execution_fingerprint(execution_id))


@require_GET
def list_events(request):
    return _stream(request, list_fingerprint)
