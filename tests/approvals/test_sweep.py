"""Periodic work: reminders, escalation and expiry, driven by calling
``approvals.services.sweep(now)`` with a chosen clock."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from approvals import services
from approvals.errors import Forbidden
from approvals.models import Approval
from core.states import State
from webhooks.models import Webhook, WebhookDelivery
from workflows import services as wf
from workflows.errors import Conflict

from .conftest import reload, tasks_of

pytestmark = pytest.mark.django_db
NOTHING = {"reminded": 0, "escalated": 0, "expired": 0, "closed": 0, "errors": 0}


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def approval_of(execution) -> Approval:
    return Approval.objects.get(execution_id=execution.id)


@pytest.fixture
def webhook(db):
    return Webhook.objects.create(
        url="http://127.0.0.1:9/hook", events=["APPROVAL_REMINDER", "APPROVAL_ESCALATED", "APPROVAL_EXPIRED"]
    )


def published() -> list[str]:
    return list(WebhookDelivery.objects.order_by("id").values_list("event", flat=True))


def test_nothing_due_means_nothing_done(people, start):
    start(expires_in=3600, remind_every=600)
    assert services.sweep(later(5)) == NOTHING


def test_reminders_go_to_those_who_have_not_answered_once_per_period(
    people, start, outbox, webhook, django_capture_on_commit_callbacks
):
    ex = start(quorum=2, remind_every=60)
    services.answer(approval_of(ex).id, people["alice"], "approve", data={"amount": 5})
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep(later(61))["reminded"] == 1
    assert [m.to for m in outbox] == [["bob@example.com"]]
    assert outbox[0].subject == "Reminder, approval still needed: Pay 100 EUR?"
    assert services.sweep(later(61)) == NOTHING  # the same moment again: already done
    assert services.sweep(later(125))["reminded"] == 1
    assert approval_of(ex).reminders_sent == 2
    assert published() == ["APPROVAL_REMINDER", "APPROVAL_REMINDER"]


def test_expiry_rejects_by_default_and_the_workflow_takes_the_no_branch(people, start, webhook):
    ex = start(expires_in=60)
    assert services.sweep(later(61))["expired"] == 1
    a = approval_of(ex)
    assert a.status == Approval.Status.EXPIRED and "rejected by default" in a.closed_reason
    assert a.result == {"approved": False, "data": {"reason": "ok"}, "responses": [], "expired": True}
    assert tasks_of(ex) == {"ask": State.SUCCESS, "refuse": State.SUCCESS}
    assert services.sweep(later(61)) == NOTHING
    with pytest.raises(Conflict, match="already EXPIRED"):
        services.answer(a.id, people["alice"], "approve", data={"amount": 5})
    assert published() == ["APPROVAL_EXPIRED"]


def test_expiry_may_approve_with_the_form_defaults(people, start):
    ex = start(expires_in=60, on_expiry="approve")
    services.sweep(later(61))
    assert approval_of(ex).result["approved"] is True and approval_of(ex).result["data"] == {"reason": "ok"}
    assert tasks_of(ex)["pay"] == State.SUCCESS


def test_escalation_adds_people_gives_them_time_then_rejects(
    people, start, outbox, webhook, django_capture_on_commit_callbacks
):
    ex = start(expires_in=60, on_expiry="escalate", escalate_to=["finance", "erin"])
    a = approval_of(ex)
    with pytest.raises(Forbidden):
        services.answer(a.id, people["carol"], "approve", data={"amount": 5})
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep(later(61))["escalated"] == 1
    a = approval_of(ex)
    assert a.status == Approval.Status.PENDING and a.escalated_at is not None
    assert a.expires_at > later(100)  # one more expires_in from the escalation
    assert sorted(m.to[0] for m in outbox) == ["carol@example.com", "dave@example.com", "erin@example.com"]
    assert outbox[0].subject.startswith("Escalated to you")
    assert services.sweep(later(62)) == NOTHING  # escalates once
    assert services.sweep(later(125))["expired"] == 1  # the second expiry rejects
    assert tasks_of(ex)["refuse"] == State.SUCCESS
    assert published() == ["APPROVAL_ESCALATED", "APPROVAL_EXPIRED"]


def test_an_escalated_approver_can_decide(people, start):
    ex = start(expires_in=60, on_expiry="escalate", escalate_to=["finance"])
    services.sweep(later(61))
    services.answer(approval_of(ex).id, people["carol"], "approve", data={"amount": 7})
    assert tasks_of(ex)["pay"] == State.SUCCESS


def test_expiry_while_paused_is_applied_at_resume(people, start):
    ex = start(expires_in=60)
    wf.change_execution_state(ex.id, State.PAUSED)
    assert services.sweep(later(61))["expired"] == 1
    assert reload(ex).state == State.PAUSED and tasks_of(ex).get("refuse") in (None, State.IDLE)
    wf.change_execution_state(ex.id, State.RUNNING)
    assert reload(ex).state == State.SUCCESS and tasks_of(ex)["refuse"] == State.SUCCESS


def test_one_broken_approval_does_not_stop_the_others(people, start, monkeypatch):
    first, second = start(expires_in=60), start(expires_in=60)
    real = services.wf_services.complete_action
    broken_action = approval_of(first).action_id

    def flaky(action_id, *args):
        if action_id == broken_action:
            raise RuntimeError("database hiccup")
        return real(action_id, *args)

    monkeypatch.setattr(services.wf_services, "complete_action", flaky)
    counts = services.sweep(later(61))
    assert counts["expired"] == 1 and counts["errors"] == 1
    assert approval_of(first).status == Approval.Status.PENDING  # rolled back, due again next time
    assert approval_of(second).status == Approval.Status.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_expire_each_approval_once(people, start):
    ex = start(expires_in=60)
    now = later(61)
    results, barrier = [], threading.Barrier(3)

    def sweeper():
        try:
            barrier.wait()
            results.append(services.sweep(now))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 3
    assert sum(r["expired"] for r in results) == 1 and sum(r["errors"] for r in results) == 0
    assert approval_of(ex).status == Approval.Status.EXPIRED
    assert tasks_of(ex) == {"ask": State.SUCCESS, "refuse": State.SUCCESS}
