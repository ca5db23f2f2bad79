"""``manage.py worker``'s process model: a django-q2 sentinel that is alive
exactly as long as it guards workers, and stops in order on SIGTERM.

django-q2's own ``qcluster`` starts the sentinel in a child process and
returns at once, so a command wrapped around it cannot tell when the
workers stop. Here the command's process *is* the sentinel:

* it beats in ``workflows.lifecycle`` once per guard cycle, so it counts as
  live only while its pool runs;
* SIGTERM or SIGINT, to the process or to its whole process group, asks the
  guard loop to stop; the pool lives in its own process group, so a group
  signal reaches only the sentinel, and the jobs in flight finish;
* jobs the pusher prefetched but no worker started go back to the broker;
* the stop is bounded (``GUST["WORKER_STOP_TIMEOUT"]``): workers still busy
  after it are killed and their actions are left to the overdue sweep;
* a child dies with the sentinel (``PR_SET_PDEATHSIG``), so kill -9 of the
  command leaves no orphan running jobs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue as stdlib_queue
import signal
import threading
import time
import uuid

from django_q.cluster import Sentinel
from django_q.signing import SignedPackage

from workflows import conf, dispatch, lifecycle, queue

logger = logging.getLogger("gust.worker")

_PR_SET_PDEATHSIG = 1


def _detach_child() -> None:
    """In every process the sentinel forks: leave the caller's process group,
    take SIGTERM's default back (a timed-out worker is terminated with it) and
    die with the sentinel."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: orphans are possible, nothing else changes
        pass


class _StopRequest:
    """The sentinel's stop event. Its guard loop waits on it once per cycle,
    which is where this process proves it is alive. A plain flag, not a
    multiprocessing Event: the signal handler sets it while the main thread
    may be inside ``wait()``, and an Event's ``set()`` there deadlocks on the
    condition the waiting thread holds."""

    SLICE = 0.1  # seconds between looks at the flag

    def __init__(self, name: str):
        self._name = name
        self._set = False
        self._next_beat = 0.0

    def wait(self, timeout: float | None = None) -> bool:
        end = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while not self._set:
            now = time.monotonic()
            if now >= self._next_beat:
                try:
                    lifecycle.beat(self._name)
                except Exception:  # the database may be restarting; the next cycle tries again
                    logger.exception("heartbeat of %s failed", self._name)
                self._next_beat = now + lifecycle.BEAT_SECONDS
            if now >= end:
                return False
            time.sleep(min(self.SLICE, end - now))
        return True

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


class GustSentinel(Sentinel):
    """A django-q2 sentinel run in the command's own process."""

    def start(self):  # called at the end of Sentinel.__init__, after its signal set-up
        import multiprocessing

        dispatch.STOPPING = multiprocessing.get_context("fork").RawValue("b", 0)  # shared with the forked pool
        signal.signal(signal.SIGTERM, self._ask_to_stop)
        signal.signal(signal.SIGINT, self._ask_to_stop)
        os.register_at_fork(after_in_child=_detach_child)
        super().start()

    def spawn_pusher(self):
        # Gust's pusher merges the run_action jobs of a dequeue (workflows.queue.pusher).
        return self.spawn_process(queue.pusher, self.task_queue, self.event_out, self.broker, self.pool_size)

    def _ask_to_stop(self, signum, frame):
        logger.info("worker %s got %s: finishing the jobs in flight", self.name, signal.Signals(signum).name)
        if dispatch.STOPPING is not None:
            dispatch.STOPPING.value = 1
        self.stop_event.set()

    def stop(self):
        self.event_out.set()  # the pusher stops pulling from the broker
        returned = 0
        while self.pusher.is_alive():  # it may be blocked handing over one more job
            returned += self._return_prefetched()
        returned += self._return_prefetched()
        if returned:
            logger.info("worker %s returned %d prefetched job(s) to the queue", self.name, returned)
        deadline = threading.Timer(_stop_timeout(), self._kill_busy_workers)
        deadline.daemon = True
        deadline.start()
        try:
            super().stop()
        finally:
            deadline.cancel()

    def _return_prefetched(self) -> int:
        returned = 0
        while True:
            try:
                task = self.task_queue.get(timeout=0.02)
            except stdlib_queue.Empty:
                return returned
            ack_id = task.pop("ack_id", None)
            task.pop("cluster", None)
            self.broker.enqueue(SignedPackage.dumps(task))
            if ack_id is not None:
                self.broker.acknowledge(ack_id)
            returned += 1

    def _kill_busy_workers(self):
        busy = [p for p in self.pool if p.is_alive()]
        logger.error(
            "worker %s: %d job(s) still running after %.0f s; stopping them", self.name, len(busy), _stop_timeout()
        )
        for p in busy:
            p.kill()


def _stop_timeout() -> float:
    return conf.seconds("WORKER_STOP_TIMEOUT")


def run(name: str) -> None:
    """Guard a pool of workers until SIGTERM/SIGINT; return once it stopped.

    ``name`` is this process's registration in ``workflows.lifecycle``; the
    caller registers before and unregisters after.
    """
    import multiprocessing

    GustSentinel(_StopRequest(name), multiprocessing.get_context("fork").Event(), uuid.uuid4())
