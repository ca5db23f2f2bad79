"""Handing jobs to django-q2 workers, shared by the dispatcher and the notifier."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from functools import lru_cache
from time import sleep

from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
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


def enqueue(func: str, calls: list[tuple], label: str, inline: bool | None = None) -> None:
    """One job per argument tuple in ``calls``, all in one enqueue transaction.
    ``inline=False``: to the broker even in sync mode (a worker handing jobs back)."""
    b = broker()
    options = {} if inline is None else {"sync": inline}
    with _one_transaction_for(b):
        for args in calls:
            async_task(func, *args, broker=b, task_name=f"{label} {args[0]}", **options)


def run_actions(action_ids: list[str], inline: bool | None = None) -> None:
    """A worker job per action execution (``dispatch.run_action``)."""
    enqueue("workflows.dispatch.run_action", [(a,) for a in action_ids], "action", inline)


def continue_later(execution_id: str) -> None:
    """A worker job that goes on with an execution past its step limit."""
    enqueue("workflows.dispatch.continue_execution", [(execution_id,)], "continue")


def gust_broker(list_key: str = Conf.PREFIX):
    """``Q_CLUSTER["broker_class"]``: GustORM on the ORM broker, django-q2's
    Redis broker otherwise (the two that config/settings.py configures),
    decided by the configuration in force when a broker is made."""
    if Conf.ORM:
        return GustORM(list_key=list_key)
    return GustRedis(list_key=list_key)


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
            tasks = list(qs.values_list("id", "payload")[: Conf.BULK])
            if tasks:
                self.get_connection().filter(id__in=[pk for pk, _ in tasks]).update(lock=self.timeout(None))
        if tasks:
            return tasks
        sleep(Conf.POLL)  # empty queue, spare the CPU (as the ORM broker)
        return None

    def acknowledge(self, task_id):
        """Delete the finished job (or the jobs a merged one stands for, a
        list: ``pusher``) in a transaction, for the same queue as the dequeue's."""
        with transaction.atomic(using=Conf.ORM):
            if isinstance(task_id, list):
                return self.get_connection().filter(pk__in=task_id).delete()
            return self.get_connection().filter(pk=task_id).delete()


class GustRedis(Redis):
    """django-q2's Redis broker, taking up to ``bulk`` jobs per dequeue: a
    blocking pop of the first and, when the list holds more, one LPOP of the
    rest, instead of a round trip per job. Redis forgets a job once it is
    popped, as before (``dispatch.redispatch_unclaimed`` covers a lost one)."""

    def dequeue(self):
        first = self.connection.blpop(self.list_key, 1)
        if not first:
            return None
        tasks = [(None, first[1])]
        if Conf.BULK > 1:
            tasks += [(None, t) for t in self.connection.lpop(self.list_key, Conf.BULK - 1) or ()]
        return tasks


RUN_ACTION = "workflows.dispatch.run_action"
RUN_ACTIONS = "workflows.dispatch.run_actions"


def merge_run_action_jobs(tasks: list[dict], idle_workers: int) -> list[dict]:
    """The jobs of one dequeue as the workers get them: the plain
    ``run_action`` jobs (no hook, group, chain or cache) merged into
    ``run_actions`` jobs of several actions each, the others as they are.
    When workers wait for work (``idle_workers``), the actions are dealt out
    over that many jobs so they run side by side; otherwise they go in one.
    A merged job's ``ack_id`` is the list of the ones it stands for."""
    plain = [
        t
        for t in tasks
        if t.get("func") == RUN_ACTION
        and len(t.get("args") or ()) == 1
        and not any(t.get(k) for k in ("hook", "group", "chain", "cached", "kwargs"))
    ]
    if len(plain) < 2:
        return tasks
    out = [t for t in tasks if not any(t is p for p in plain)]
    parts = max(1, min(idle_workers, len(plain)))
    for i in range(parts):
        group = plain[i::parts]
        if len(group) == 1:
            out.append(group[0])
            continue
        acks = [t["ack_id"] for t in group if t.get("ack_id") is not None]
        first = group[0]
        out.append(
            {
                **first,
                "id": uuid.uuid4().hex,
                "func": RUN_ACTIONS,
                "args": ([t["args"][0] for t in group],),
                "name": f"actions {first['args'][0]} +{len(group) - 1}",
                "ack_id": acks or None,
                "started": min(t["started"] for t in group),
            }
        )
    return out


def pusher(task_queue, event, broker, workers: int):
    """django-q2's pusher (``django_q.pusher.pusher``, same loop and
    errors), handing the workers ``merge_run_action_jobs`` of each dequeue."""
    from django_q.pusher import logger
    from django_q.signing import BadSignature, SignedPackage

    while True:
        try:
            task_set = broker.dequeue()
        except Exception:
            logger.exception("Failed to pull task from broker")
            sleep(10)  # broker probably crashed; the sentinel handles it
            break
        if task_set:
            tasks = []
            for ack_id, payload in task_set:
                try:
                    task = SignedPackage.loads(payload)
                except (TypeError, BadSignature):
                    logger.exception("Failed to push task to queue")
                    broker.fail(ack_id)
                    continue
                task["cluster"] = Conf.CLUSTER_NAME
                task["ack_id"] = ack_id
                tasks.append(task)
            try:
                waiting = task_queue.qsize()
            except NotImplementedError:  # not every platform counts a multiprocessing queue
                waiting = 0
            for task in merge_run_action_jobs(tasks, max(workers - waiting, 1)):
                task_queue.put(task)
        if event.is_set():
            break
