"""The approval pages in the test client: inbox, form, answers, refusals."""

import re

import pytest
from django.contrib.auth.models import Permission, User

from approvals.models import Approval, ApprovalResponse
from core.states import State

from .conftest import reload, tasks_of

pytestmark = pytest.mark.django_db


def approval_of(execution) -> Approval:
    return Approval.objects.get(execution_id=execution.id)


def login(client, user):
    client.force_login(user)
    return client


def page(client, approval, **post):
    url = f"/approvals/{approval.id}/"
    return client.post(url, post) if post else client.get(url)


def field_error(html: str, field: str) -> str:
    m = re.search(rf'data-field="{field}".*?class="field-error"[^>]*>(.*?)</div>', html, re.S)
    return m.group(1) if m else ""


def test_pages_need_a_login(client, people, start):
    a = approval_of(start())
    assert client.get("/approvals/")["Location"] == "/accounts/login/?next=/approvals/"
    assert client.get(f"/approvals/{a.id}/")["Location"] == f"/accounts/login/?next=/approvals/{a.id}/"


def test_an_approver_who_is_not_staff_can_log_in(client, people):
    r = client.post("/accounts/login/", {"username": "alice", "password": "pw", "next": "/approvals/"})
    assert r.status_code == 302 and r["Location"] == "/approvals/"
    assert client.get("/approvals/").status_code == 200
    client.logout()
    assert client.post("/accounts/login/", {"username": "alice", "password": "pw"})["Location"] == "/"
    client.logout()
    bad = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert bad.status_code == 200 and "Please enter a correct username and password" in bad.content.decode()


def test_the_inbox_lists_what_the_user_may_answer(client, people, start):
    mine, groups_only = start(), start(assignees=[], groups=["finance"])
    html = login(client, people["alice"]).get("/approvals/").content.decode()
    assert f"/approvals/{approval_of(mine).id}/" in html and approval_of(groups_only).id not in html
    carol = login(client, people["carol"]).get("/approvals/").content.decode()
    assert approval_of(groups_only).id in carol and approval_of(mine).id not in carol
    assert "Nothing is waiting for you" in login(client, people["erin"]).get("/approvals/").content.decode()


def test_inbox_filters_pending_answered_expired_workflow_and_age(client, people, start):
    first, second = start(quorum=2), start()
    a1, a2 = approval_of(first), approval_of(second)
    login(client, people["alice"])
    page(client, a1, decision="approve", data__amount="5")

    def listed(**query):
        html = client.get("/approvals/", query).content.decode()
        return {a.id for a in (a1, a2) if f"/approvals/{a.id}/" in html}

    assert listed() == {a2.id}  # a1 waits for bob, not for alice
    assert listed(status="answered") == {a1.id}
    assert listed(status="all") == {a1.id, a2.id}
    assert listed(status="expired") == set()
    assert listed(status="all", workflow=second.workflow_name) == {a2.id}
    assert listed(status="all", age="1h") == {a1.id, a2.id}
    assert listed(status="all", age="old") == set()


def test_the_form_is_built_from_the_schema(client, people, start):
    ex = start()
    html = page(login(client, people["alice"]), approval_of(ex)).content.decode()
    assert re.search(r'<input type="number" name="data__amount"[^>]*max="5000"', html)
    assert re.search(r'name="data__reason" value="ok"', html)  # the default, prefilled
    assert 'type="checkbox" name="data__urgent"' in html
    assert 'value="approve"' in html and 'value="reject"' in html
    assert f'href="/executions/{ex.id}/#task-ask"' in html
    assert html.index("data__amount") < html.index("data__reason") < html.index("data__urgent")


def test_invalid_data_is_shown_on_its_field_and_changes_nothing(client, people, start):
    ex = start()
    r = page(login(client, people["alice"]), approval_of(ex), decision="approve", data__amount="lots", data__reason="x")
    assert r.status_code == 400
    html = r.content.decode()
    assert field_error(html, "amount") == "&#x27;lots&#x27; is not of type &#x27;integer&#x27;"
    assert field_error(html, "reason") == ""
    assert 'value="x"' in html  # what was typed stays in the form
    r = page(client, approval_of(ex), decision="approve", data__amount="")
    assert r.status_code == 400 and field_error(r.content.decode(), "amount") == "This field is required."
    assert ApprovalResponse.objects.count() == 0 and reload(ex).state == State.RUNNING


def test_approving_completes_the_workflow_and_shows_the_history(client, people, start):
    ex = start()
    a = approval_of(ex)
    r = page(
        login(client, people["alice"]), a, decision="approve", data__amount="42", data__urgent="on", comment="ship it"
    )
    assert r.status_code == 302 and r["Location"] == f"/approvals/{a.id}/"
    assert tasks_of(ex)["pay"] == State.SUCCESS
    assert approval_of(ex).result["data"] == {"amount": 42, "reason": "ok", "urgent": True}
    html = client.get(r["Location"]).content.decode()
    assert "You approved “Pay 100 EUR?”." in html and "You <strong>approved</strong> this" in html
    assert re.search(r'id="history".*alice.*approve.*ship it', html, re.S)
    assert 'id="approval-status">APPROVED' in html and 'value="approve"' not in html


def test_a_second_answer_is_refused_with_409(client, people, start):
    a = approval_of(start(quorum=2))
    login(client, people["alice"])
    page(client, a, decision="reject", comment="no")
    r = page(client, a, decision="approve", data__amount="5")
    assert r.status_code == 409 and "You already answered this approval (reject" in r.content.decode()
    assert ApprovalResponse.objects.get().decision == "reject"


def test_an_answer_to_a_closed_approval_is_refused_with_409(client, people, start):
    a = approval_of(start())
    page(login(client, people["alice"]), a, decision="reject")
    r = page(login(client, people["bob"]), a, decision="approve", data__amount="5")
    assert r.status_code == 409 and "already REJECTED" in r.content.decode()
    assert ApprovalResponse.objects.count() == 1


def test_a_non_assignee_gets_403_and_changes_nothing(client, people, start):
    ex = start()
    a = approval_of(ex)
    login(client, people["erin"])
    r = page(client, a)
    assert r.status_code == 403 and "erin is not an assignee of this approval" in r.content.decode()
    r = page(client, a, decision="approve", data__amount="5")
    assert r.status_code == 403 and "Nothing was changed" in r.content.decode()
    assert ApprovalResponse.objects.count() == 0 and reload(ex).state == State.RUNNING


def test_a_viewer_may_look_but_not_answer(client, people, start):
    a = approval_of(start())
    viewer = User.objects.create_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_approval"))
    login(client, viewer)
    html = page(client, a).content.decode()
    assert "not one of its assignees" in html and 'value="approve"' not in html
    assert page(client, a, decision="approve", data__amount="5").status_code == 403
    assert ApprovalResponse.objects.count() == 0


def test_an_unknown_decision_is_a_400(client, people, start):
    a = approval_of(start())
    r = page(login(client, people["alice"]), a, decision="maybe", data__amount="5")
    assert r.status_code == 400 and "decision must be" in r.content.decode()


def test_the_execution_page_links_the_approval(client, people, start):
    ex = start()
    a = approval_of(ex)
    html = client.get(f"/executions/{ex.id}/").content.decode()
    assert f'href="/approvals/action/{a.action_id}/"' in html
    r = login(client, people["alice"]).get(f"/approvals/action/{a.action_id}/")
    assert r.status_code == 302 and r["Location"] == f"/approvals/{a.id}/"
    assert client.get("/approvals/action/nope/").status_code == 404
    assert client.get("/approvals/nope/").status_code == 404
