"""``manage.py run_tracker``: the results tracker process.

Polls due tracked actions every QUERY_INTERVAL with THREAD_POOL_SIZE
threads, applies early callbacks, runs the periodic hooks, fires the
engine's timers (wait-before, retry delays, timeouts), and stops
gracefully on SIGTERM/SIGINT (in-flight queries finish, claims are released).
"""

import logging
import signal
import sys
import threading

from django.core.management.base import BaseCommand

from tracker.runner import Tracker
from workflows import lifecycle
from workflows.startup import ensure_migrated, settle_after_start_up
from workflows.timers import TimerLoop

logger = logging.getLogger("gust.tracker")
SWITCH_INTERVAL = 0.0005  # seconds (sys.setswitchinterval) in the tracker process


class Command(BaseCommand):
    help = "Run the results tracker (polls async actions declared with tracking: poll or hybrid)."

    def add_arguments(self, parser):
        parser.add_argument("--query-interval", type=float, help="seconds between queries of one action")
        parser.add_argument("--thread-pool-size", type=int, help="queries in flight at once")
        parser.add_argument("--once", action="store_true", help="run one cycle and exit")

    def handle(self, *args, query_interval=None, thread_pool_size=None, once=False, **options):
        ensure_migrated("tracker")
        tracker = Tracker(query_interval=query_interval, thread_pool_size=thread_pool_size)
        if once:
            self.stdout.write(str(tracker.run_once()))
            return
        settle_after_start_up()
        # Completions are applied in threads of their own while the polling
        # threads keep the GIL busy; each of a completion's SQL statements
        # gives the GIL up and waits to get it back, up to the switch interval
        # (5 ms by default): 40 statements could wait 200 ms. A shorter
        # interval keeps a completion's latency to its own work.
        sys.setswitchinterval(SWITCH_INTERVAL)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        name = lifecycle.register("tracker", tracker.name)
        heartbeat = lifecycle.Heartbeat(name).start()
        tracker.start()
        timers = TimerLoop().start()  # this process also fires the engine's durable timers
        stop.wait()
        timers.stop()
        tracker.stop()  # in-flight queries finish, claims are released
        heartbeat.stop()
        lifecycle.unregister(name)
