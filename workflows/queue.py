"""Handing jobs to django-q2 workers, shared by the dispatcher and the notifier."""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from time import sleep

from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.tasks import async_task


@lru_cache(maxsize=1)
def broker():
    # One broker per process: a new connection per enqueue caps throughput.
    return get_broker()


def _one_transaction_for(b):
    # Outside a transaction the ORM broker calls close_old_connections before
    # each enqueue; with CONN_MAX_AGE 0 (SQLite's set-up until issue 12) that
    # closed the connection, which checkpoints the WAL, and the next query
    # reconnected: measured 2.5-8 ms per enqueue, 0.45 ms inside one atomic
    # block. One transaction also makes the enqueues one write. Not in sync mode, where the job runs inline and its I/O
    # must stay outside any transaction.
    if isinstance(b, ORM) and not Conf.SYNC:
        return transaction.atomic(using=Conf.ORM)
    return nullcontext()


def enqueue(func: str, calls: list[tuple], label: str) -> None:
    """One job per argument tuple in ``calls``, all in one enqueue transaction."""
    b = broker()
    with _one_transaction_for(b):
        for args in calls:
            async_task(func, *args, broker=b, task_name=f"{label} {args[0]}")


def run_actions(action_ids: list[str]) -> None:
    """A worker job per action execution (``dispatch.run_action``)."""
    enqueue("workflows.dispatch.run_action", [(a,) for a in action_ids], "action")


def continue_later(execution_id: str) -> None:
    """A worker job that goes on with an execution past its step limit."""
    enqueue("workflows.dispatch.continue_execution", [(execution_id,)], "continue")


def gust_broker(list_key: str = Conf.PREFIX):
    """``Q_CLUSTER["broker_class"]``: GustORM on the ORM broker, django-q2's
    Redis broker otherwise (the two that config/settings.py configures),
    decided by the configuration in force when a broker is made."""
    if Conf.ORM:
        return GustORM(list_key=list_key)
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=list_key)


class GustORM(ORM):
    """django-q2's ORM broker (through ``gust_broker``), taking up to
    ``bulk`` jobs per dequeue in one write transaction instead of a SELECT and
    then one UPDATE per job, each a write of its own. On SQLite every write
    is a turn at the one write lock that the web, worker and tracker
    processes share (bench/README.md, "Broker throughput"); on PostgreSQL
    ``SKIP LOCKED`` lets several pushers take different jobs at once. A job
    is taken as before: its ``lock`` moves ``retry`` seconds on, and it is
    handed out again after that unless acknowledged."""

    def dequeue(self):
        with transaction.atomic(using=Conf.ORM):
            qs = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now()).order_by("lock", "id")
            if connections[Conf.ORM].features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            tasks = list(qs.values_list("id", "payload")[:Conf.BULK])
            if tasks:
                self.get_connection().filter(id__in=[pk for pk, _ in tasks]).update(lock=self.timeout(None))
        if tasks:
            return tasks
        sleep(Conf.POLL)  # empty queue, spare the CPU (as the ORM broker)
        return None

    def acknowledge(self, task_id):
        """Delete the finished job in a transaction, for the same queue as the dequeue's."""
        with transaction.atomic(using=Conf.ORM):
            return self.get_connection().filter(pk=task_id).delete()
