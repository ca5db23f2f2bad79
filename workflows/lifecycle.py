"""Graceful shutdown for any number of Gust processes (seed 004).

Workers and trackers register when they start and beat while they run.
When one stops it first finishes its own in-flight work (the django-q2
cluster and ``Tracker.stop()`` do that); then, under one database lock, it
checks whether any other live process remains. Only the last one pauses the
RUNNING workflows, tagging them ``paused by shutdown``; the next process to
start takes the same lock and resumes exactly those, never a workflow a
person paused.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone

from core.states import State
from workflows import services
from workflows.errors import GustError
from workflows.models import EngineProcess, ShutdownLock, WorkflowExecution

logger = logging.getLogger("gust.lifecycle")

SHUTDOWN_TAG = "paused by shutdown"
BEAT_SECONDS = 5.0
ALIVE_SECONDS = 30.0  # a process silent for longer is considered dead


def _locked():
    ShutdownLock.objects.get_or_create(id=1)
    return ShutdownLock.objects.select_for_update().get(id=1)


def live_processes(now=None, exclude: str | None = None):
    """Processes that beat within ALIVE_SECONDS, less those of this host whose
    pid is gone (killed with -9: no need to wait for their beat to age)."""
    now = now or timezone.now()
    qs = EngineProcess.objects.filter(stopped_at__isnull=True, last_seen__gte=now - timedelta(seconds=ALIVE_SECONDS))
    if exclude:
        qs = qs.exclude(name=exclude)
    dead = [name for name in qs.values_list("name", flat=True) if _died_here(name)]
    return qs.exclude(name__in=dead) if dead else qs


def _died_here(name: str) -> bool:
    """Names hold ``...:<host>:<pid>:...``: true when that host is this one
    and no process has that pid any more."""
    parts = name.split(":")
    host = socket.gethostname()
    for i, part in enumerate(parts[:-1]):
        if part == host and parts[i + 1].isdigit():
            try:
                os.kill(int(parts[i + 1]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:  # alive, another user's
                return False
            return False
    return False


def register(kind: str, name: str | None = None) -> str:
    """Record a starting process and resume what the last shutdown paused."""
    name = name or f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    with transaction.atomic():
        _locked()
        EngineProcess.objects.create(name=name, kind=kind, last_seen=timezone.now())
        resumed = 0
        for ex_id in WorkflowExecution.objects.filter(state=State.PAUSED, state_info=SHUTDOWN_TAG).values_list(
            "id", flat=True
        ):
            try:
                services.change_execution_state(ex_id, State.RUNNING)
                resumed += 1
            except GustError as exc:
                logger.warning("could not resume %s: %s", ex_id, exc.message)
    if resumed:
        logger.info("%s resumed %d workflow(s) paused by the last shutdown", name, resumed)
    return name


def beat(name: str) -> None:
    EngineProcess.objects.filter(name=name).update(last_seen=timezone.now())


def unregister(name: str) -> int:
    """Mark this process stopped; when no other live process remains, pause
    every RUNNING workflow with the shutdown tag. Returns how many were paused."""
    paused = 0
    with transaction.atomic():
        _locked()
        EngineProcess.objects.filter(name=name).update(stopped_at=timezone.now())
        if live_processes(exclude=name).exists():
            return 0
        for ex_id in WorkflowExecution.objects.filter(state=State.RUNNING).values_list("id", flat=True):
            try:
                services.change_execution_state(ex_id, State.PAUSED, reason=SHUTDOWN_TAG)
                paused += 1
            except GustError:
                pass  # it finished meanwhile
    logger.info("%s was the last Gust process: paused %d running workflow(s) until the next start", name, paused)
    return paused


class Heartbeat:
    """Beats for a registered process from a daemon thread."""

    def __init__(self, name: str):
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gust-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(BEAT_SECONDS):
            try:
                beat(self.name)
            except Exception:  # the database may be restarting; try again next beat
                logger.exception("heartbeat of %s failed", self.name)
        connections.close_all()

    def stop(self):
        self._stop.set()
        self._thread.join(BEAT_SECONDS + 1)
