"""``manage.py run_tracker``: the results tracker process.

This is the process skeleton (start-up check, lifecycle, graceful stop);
polling of outside systems arrives with the tracker issue. It already
refuses to start on an unmigrated database and stops cleanly on SIGTERM.
"""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows.startup import ensure_migrated

logger = logging.getLogger("gust.tracker")


class Command(BaseCommand):
    help = "Run the results tracker (skeleton: nothing is polled yet)."

    def handle(self, *args, **options):
        ensure_migrated("tracker")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        conf = settings.TRACKER
        logger.info(
            "tracker started (QUERY_INTERVAL=%s s, THREAD_POOL_SIZE=%s); no query functions are registered yet",
            conf["QUERY_INTERVAL"], conf["THREAD_POOL_SIZE"],
        )
        while not stop.wait(conf["QUERY_INTERVAL"]):
            pass
        logger.info("tracker stopped")
