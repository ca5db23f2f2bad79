"""A worker job of several actions (``dispatch.run_actions``, made by the
pusher from one dequeue: ``queue.merge_run_action_jobs``): each action is
claimed just before it runs, in the transaction that stores the result of
the one before, so none runs twice and one not reached is not claimed."""

import contextlib
import datetime as dt
import types

import pytest
from django.db import transaction

from workflows import dispatch, queue, services
from workflows.models import ActionExecution, WorkflowExecution

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(outside_service, django_capture_on_commit_callbacks):
    """Three std.http actions committed and queued, which no worker has taken yet."""
    services.save_workflows(
        f"version: '2.0'\ncall:\n  tasks:\n    c:\n      action: std.http url={outside_service.url}/job\n"
    )
    with django_capture_on_commit_callbacks(execute=False):  # the jobs stay in the queue
        exs = [services.start_execution("call") for _ in range(3)]
    return exs, [ActionExecution.objects.get(workflow_execution=ex).id for ex in exs]


def test_a_batch_runs_each_action_once_and_skips_one_already_claimed(queued, outside_service):
    exs, ids = queued
    assert services.claim_for_worker(ids[1])  # another delivery already started this one
    dispatch.run_actions([ids[0], ids[1], ids[2], ids[0]])  # the first id twice: run once
    assert len(outside_service.requests) == 2
    states = dict(WorkflowExecution.objects.filter(id__in=[e.id for e in exs]).values_list("id", "state"))
    assert [states[e.id] for e in exs] == ["SUCCESS", "RUNNING", "SUCCESS"]
    assert ActionExecution.objects.get(id=ids[1]).worker_started_at is not None  # left to its own worker


def test_a_result_is_stored_with_the_next_claim_in_one_transaction(queued, monkeypatch):
    exs, ids = queued
    writes, inside = [], []
    real_atomic, real_complete, real_claim = transaction.atomic, services.complete_action, services.claim_for_worker

    @contextlib.contextmanager
    def atomic():
        inside.append(len(writes))
        writes.append([])
        try:
            with real_atomic():
                yield
        finally:
            inside.pop()

    def record(kind, real):
        def call(action_id, *args):
            (writes[inside[-1]] if inside else writes.append([]) or writes[-1]).append((kind, ids.index(action_id)))
            return real(action_id, *args)

        return call

    monkeypatch.setattr(dispatch, "transaction", types.SimpleNamespace(atomic=atomic))
    monkeypatch.setattr(services, "complete_action", record("complete", real_complete))
    monkeypatch.setattr(services, "claim_for_worker", record("claim", real_claim))
    dispatch.run_actions(ids)
    # Four write transactions for three actions, not six: each claim carries the result before it.
    assert writes == [
        [("claim", 0)],
        [("complete", 0), ("claim", 1)],
        [("complete", 1), ("claim", 2)],
        [("complete", 2)],
    ]
    assert set(WorkflowExecution.objects.filter(id__in=[e.id for e in exs]).values_list("state", flat=True)) == {
        "SUCCESS"
    }


def test_a_stopping_worker_hands_back_the_actions_it_did_not_start(queued, outside_service, monkeypatch):
    exs, ids = queued
    handed_back = []
    monkeypatch.setattr(queue, "run_actions", lambda a, inline=None: handed_back.extend(a))

    class Flag:
        value = 1

    monkeypatch.setattr(dispatch, "STOPPING", Flag())
    dispatch.run_actions(ids)
    assert outside_service.requests == [] and handed_back == ids
    assert not ActionExecution.objects.filter(id__in=ids, worker_started_at__isnull=False).exists()


def job(func, *args, ack=None, **extra):
    return {
        "id": f"id-{args}",
        "name": "n",
        "func": func,
        "args": args,
        "kwargs": {},
        "ack_id": ack,
        "started": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        **extra,
    }


def test_the_pusher_merges_plain_run_action_jobs_and_deals_them_to_idle_workers():
    tasks = [job(queue.RUN_ACTION, f"a{i}", ack=i) for i in range(5)]
    other = job("workflows.dispatch.continue_execution", "ex1", ack=9)
    hooked = job(queue.RUN_ACTION, "a9", ack=10, hook="some.hook")
    one = queue.merge_run_action_jobs([*tasks, other, hooked], idle_workers=1)
    assert [t["func"] for t in one] == ["workflows.dispatch.continue_execution", queue.RUN_ACTION, queue.RUN_ACTIONS]
    assert one[-1]["args"] == (["a0", "a1", "a2", "a3", "a4"],) and one[-1]["ack_id"] == [0, 1, 2, 3, 4]
    two = queue.merge_run_action_jobs(tasks, idle_workers=2)
    assert [t["args"][0] for t in two] == [["a0", "a2", "a4"], ["a1", "a3"]]
    assert queue.merge_run_action_jobs(tasks[:1], idle_workers=1) == tasks[:1]  # nothing to merge
    dealt = queue.merge_run_action_jobs(tasks[:2], idle_workers=4)  # one each: as they were
    assert [t["func"] for t in dealt] == [queue.RUN_ACTION, queue.RUN_ACTION]
