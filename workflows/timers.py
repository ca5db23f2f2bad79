"""The loop that fires durable timers (wait-before, wait-after, retry
delays, timeouts) and cron triggers, run by the tracker process: it sleeps
until the next timer or trigger is due (at most ``POLL`` seconds, so
ones stored by other processes are seen) and sends each due timer to the
engine through ``services.fire_due_timers``, each due trigger to
``triggers.fire_due`` (one execution per due time, however many processes
run this loop)."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connections

from workflows import completions, services, triggers

logger = logging.getLogger("gust.timers")
POLL = 1.0  # seconds between looks at the timer table when none is due sooner (as Mistral's scheduler, fixed_delay 1 s)


class TimerLoop:
    def __init__(self, poll: float = POLL):
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0
        self.triggered = 0  # executions started by cron triggers

    def run_once(self) -> int:
        # A timeout policy that fires fails the task's running action: no result came back.
        with completions.completing("timeout", door="timer"):
            fired = services.fire_due_timers()
        self.fired += fired
        self.triggered += triggers.fire_due()
        return fired

    def _next_due_in(self) -> float:
        return min(services.next_timer_in(most=self.poll), triggers.next_due_in(most=self.poll))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                # Look before firing: an idle loop costs the two "next due" reads a round, not four queries.
                wait = self._next_due_in()
                if wait <= 0:
                    self.run_once()
                    wait = self._next_due_in()
            except Exception:
                logger.exception("timer cycle failed; retrying")
                close_old_connections()
                wait = self.poll
            self._stop.wait(max(0.01, wait))
        connections.close_all()

    def start(self) -> TimerLoop:
        self._thread = threading.Thread(target=self._loop, name="gust-timers", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
