"""Approval scenarios through the services: workflows ask, people answer,
the workflow branches on the result. Data only through the services."""

import pytest
from django.db import transaction

from approvals import services
from approvals.errors import Forbidden, InvalidData
from approvals.models import Approval, ApprovalResponse
from core.states import State
from webhooks.models import Webhook, WebhookDelivery
from workflows import services as wf
from workflows.errors import Conflict, InvalidInput
from workflows.models import ActionExecution, TaskExecution

from .conftest import reload, tasks_of

pytestmark = pytest.mark.django_db


def approval_of(execution) -> Approval:
    return Approval.objects.get(execution_id=execution.id)


@pytest.fixture
def webhook(db):
    kinds = ["APPROVAL_CREATED", "APPROVAL_REMINDER", "APPROVAL_ESCALATED", "APPROVAL_EXPIRED", "APPROVAL_ANSWERED"]
    return Webhook.objects.create(url="http://127.0.0.1:9/hook", events=kinds)


def events(kind=None) -> list[str]:
    rows = WebhookDelivery.objects.order_by("id")
    return [r.event for r in rows if kind is None or r.event == kind]


# --- opening ---------------------------------------------------------------------------


def test_starting_the_task_opens_an_approval_and_tells_the_assignees(
    people, start, webhook, outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ex = start({"amount": 250}, groups=["finance"], remind_every=60, expires_in=3600)
    a = approval_of(ex)
    assert a.status == Approval.Status.PENDING and a.title == "Pay 250 EUR?"
    assert (a.workflow_name, a.task_name, a.action.name) == (ex.workflow_name, "ask", "gust.approval")
    assert sorted(str(x) for x in a.assignments.all()) == ["group:finance", "user:alice", "user:bob"]
    assert a.expires_at and a.next_reminder_at and a.form_order == ["amount", "reason", "urgent"]
    assert reload(ex).state == State.RUNNING and tasks_of(ex) == {"ask": State.RUNNING}
    assert events() == ["APPROVAL_CREATED"]
    payload = WebhookDelivery.objects.get().payload
    assert payload["approval_id"] == a.id and payload["url"].endswith(f"/approvals/{a.id}/")
    assert sorted(m.to[0] for m in outbox) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert outbox[0].subject == "Approval needed: Pay 250 EUR?"


def test_invalid_inputs_fail_the_task_with_every_problem_and_store_nothing(
    people, start, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ex = start(assignees=[], quorum=0)
    assert Approval.objects.count() == 0
    assert reload(ex).state == State.ERROR and tasks_of(ex) == {"ask": State.ERROR}
    info = ActionExecution.objects.get(workflow_execution_id=ex.id).state_info
    assert "at least one of assignees or groups" in info and "quorum must be a whole number" in info


# --- answering --------------------------------------------------------------------------


def test_approval_completes_the_task_and_the_workflow_branches_on_it(people, start, webhook):
    ex = start({"amount": 250})
    a = services.answer(approval_of(ex).id, people["alice"], "approve", " fine ", {"amount": 250})
    assert a.status == Approval.Status.APPROVED
    assert reload(ex).state == State.SUCCESS
    assert tasks_of(ex) == {"ask": State.SUCCESS, "pay": State.SUCCESS}
    result = ActionExecution.objects.get(workflow_execution_id=ex.id, name="gust.approval").output["result"]
    assert result["approved"] is True and result["expired"] is False
    assert result["data"] == {"amount": 250, "reason": "ok"}  # the default filled in
    [response] = result["responses"]
    assert {k: response[k] for k in ("user", "decision", "comment", "data")} == {
        "user": "alice",
        "decision": "approve",
        "comment": "fine",
        "data": {"amount": 250, "reason": "ok"},
    }
    ask = TaskExecution.objects.get(workflow_execution_id=ex.id, name="ask")
    assert ask.published["decision"]["approved"] is True  # published for later tasks
    assert events() == ["APPROVAL_CREATED", "APPROVAL_ANSWERED"]


def test_first_rejection_takes_the_other_branch(people, start):
    ex = start(quorum=2)
    services.answer(approval_of(ex).id, people["bob"], "reject", "too much")  # no data needed to say no
    assert approval_of(ex).status == Approval.Status.REJECTED
    assert tasks_of(ex) == {"ask": State.SUCCESS, "refuse": State.SUCCESS}


def test_quorum_of_two_waits_for_the_second_approval(people, start):
    ex = start(quorum=2, reject_on_first=False, assignees=["alice", "bob", "erin"])
    a = approval_of(ex)
    services.answer(a.id, people["alice"], "approve", data={"amount": 1})
    services.answer(a.id, people["bob"], "reject")
    assert approval_of(ex).status == Approval.Status.PENDING and reload(ex).state == State.RUNNING
    services.answer(a.id, people["erin"], "approve", data={"amount": 2})
    assert approval_of(ex).status == Approval.Status.APPROVED
    result = approval_of(ex).result
    assert [r["user"] for r in result["responses"]] == ["alice", "bob", "erin"]
    assert result["data"]["amount"] == 2  # the deciding answer's data
    assert tasks_of(ex)["pay"] == State.SUCCESS


def test_rejections_that_make_the_quorum_unreachable_reject(people, start):
    ex = start(quorum=2, reject_on_first=False)
    services.answer(approval_of(ex).id, people["alice"], "reject")
    assert approval_of(ex).status == Approval.Status.REJECTED  # only bob is left: 0 + 1 < 2


def test_a_group_member_may_answer(people, start):
    ex = start(assignees=[], groups=["finance"])
    services.answer(approval_of(ex).id, people["carol"], "approve", data={"amount": 5})
    assert approval_of(ex).status == Approval.Status.APPROVED


def test_a_non_assignee_is_refused_and_nothing_changes(people, start):
    ex = start()
    a = approval_of(ex)
    for user in (people["carol"], people["erin"]):
        with pytest.raises(Forbidden, match="not an assignee"):
            services.answer(a.id, user, "approve", data={"amount": 5})
    assert ApprovalResponse.objects.count() == 0 and approval_of(ex).status == Approval.Status.PENDING


def test_a_second_answer_by_the_same_person_is_refused(people, start):
    ex = start(quorum=2)
    a = approval_of(ex)
    services.answer(a.id, people["alice"], "approve", data={"amount": 5})
    with pytest.raises(Conflict, match="You already answered this approval \\(approve"):
        services.answer(a.id, people["alice"], "reject")
    assert list(ApprovalResponse.objects.values_list("username", "decision")) == [("alice", "approve")]


def test_an_answer_to_a_closed_approval_is_refused(people, start):
    ex = start()
    a = approval_of(ex)
    services.answer(a.id, people["alice"], "approve", data={"amount": 5})
    with pytest.raises(Conflict, match="already APPROVED") as caught:
        services.answer(a.id, people["bob"], "reject")
    assert caught.value.state == "APPROVED" and ApprovalResponse.objects.count() == 1


def test_data_that_breaks_the_schema_is_refused_with_field_errors(people, start):
    ex = start()
    with pytest.raises(InvalidData) as caught:
        services.answer(approval_of(ex).id, people["alice"], "approve", data={"amount": "x", "urgent": 3})
    assert set(caught.value.field_errors) == {"amount", "urgent"}
    with pytest.raises(InvalidData) as caught:
        services.answer(approval_of(ex).id, people["alice"], "approve", data={})
    assert caught.value.field_errors == {"amount": ["This field is required."]}
    assert ApprovalResponse.objects.count() == 0 and reload(ex).state == State.RUNNING


def test_an_unknown_decision_is_refused(people, start):
    with pytest.raises(InvalidInput, match="decision must be 'approve' or 'reject'"):
        services.answer(approval_of(start()).id, people["alice"], "maybe")


def test_an_answer_while_paused_is_kept_and_applied_at_resume(people, start):
    ex = start()
    wf.change_execution_state(ex.id, State.PAUSED)
    services.answer(approval_of(ex).id, people["alice"], "approve", data={"amount": 5})
    assert approval_of(ex).status == Approval.Status.APPROVED
    assert reload(ex).state == State.PAUSED and tasks_of(ex).get("pay") in (None, State.IDLE)  # not run yet
    wf.change_execution_state(ex.id, State.RUNNING)
    assert reload(ex).state == State.SUCCESS and tasks_of(ex)["pay"] == State.SUCCESS


def test_cancelling_the_execution_closes_the_approval(people, start):
    ex = start()
    wf.change_execution_state(ex.id, State.CANCELLED)
    a = approval_of(ex)
    assert a.status == Approval.Status.CANCELLED and "CANCELLED" in a.closed_reason
    with pytest.raises(Conflict, match="already CANCELLED"):
        services.answer(a.id, people["alice"], "approve", data={"amount": 5})


def test_completing_the_action_by_hand_closes_the_approval(people, start):
    ex = start()
    wf.complete_action(approval_of(ex).action_id, State.SUCCESS, {"approved": True})
    assert approval_of(ex).status == Approval.Status.CANCELLED
    assert tasks_of(ex)["pay"] == State.SUCCESS


def test_responses_are_immutable_and_outlive_the_execution(people, start):
    ex = start()
    services.answer(approval_of(ex).id, people["bob"], "reject", "no")
    response = ApprovalResponse.objects.get()
    response.comment = "changed"
    with pytest.raises(TypeError, match="audit record"):
        response.save()
    with pytest.raises(TypeError):
        response.delete()
    with pytest.raises(TypeError):
        ApprovalResponse.objects.update(comment="x")
    wf.delete_execution(ex.id)
    kept = Approval.objects.get()
    assert kept.action_id is None and kept.execution_id == ex.id
    assert ApprovalResponse.objects.get().comment == "no"


def test_a_failure_while_completing_rolls_the_answer_back(people, start, monkeypatch):
    ex = start()

    def broken(*args, **kwargs):
        raise Conflict("engine said no", "RUNNING")

    monkeypatch.setattr(services.wf_services, "complete_action", broken)
    with pytest.raises(Conflict, match="engine said no"):
        services.answer(approval_of(ex).id, people["alice"], "approve", data={"amount": 5})
    assert ApprovalResponse.objects.count() == 0 and approval_of(ex).status == Approval.Status.PENDING
    assert transaction.get_autocommit() is False  # still inside the test's transaction, not broken
