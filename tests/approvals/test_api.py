"""REST /api/approvals: the same operations and refusals as the pages."""

import base64

import pytest
from rest_framework.authtoken.models import Token

from approvals.models import Approval, ApprovalResponse
from core.states import State

from .conftest import tasks_of

pytestmark = pytest.mark.django_db


def approval_of(execution) -> Approval:
    return Approval.objects.get(execution_id=execution.id)


def basic(username: str) -> dict:
    token = base64.b64encode(f"{username}:pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def answer(client, approval_id, who, **body):
    return client.post(
        f"/api/approvals/{approval_id}/responses", body, content_type="application/json", headers=basic(who)
    )


def test_anonymous_callers_are_challenged_even_with_the_api_open(client, people, start, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": False}  # opens /v2, not the approvals: an answer needs a person
    r = client.get("/api/approvals/")
    assert r.status_code == 401 and r["WWW-Authenticate"] == "X-Auth-Token"
    assert "faultstring" in r.json()
    assert client.get("/api/approvals/", headers={"Authorization": "Basic bm9ib2R5Onh4"}).status_code == 401


def test_an_api_token_works_as_for_v2(client, people, start):
    a = approval_of(start())
    token = Token.objects.create(user=people["alice"])
    r = client.get(f"/api/approvals/{a.id}", headers={"X-Auth-Token": token.key})
    assert r.status_code == 200 and r.json()["can_answer"] is True


def test_list_and_read_what_the_caller_may_answer(client, people, start):
    ex = start()
    a = approval_of(ex)
    listed = client.get("/api/approvals", headers=basic("alice")).json()["approvals"]
    assert [x["id"] for x in listed] == [a.id]
    one = client.get(f"/api/approvals/{a.id}", headers=basic("alice")).json()
    assert one["assignees"] == ["alice", "bob"] and one["groups"] == [] and one["can_answer"] is True
    assert one["form"]["required"] == ["amount"] and one["execution_id"] == ex.id
    assert one["status"] == "PENDING" and one["responses"] == []
    assert client.get("/api/approvals", headers=basic("erin")).json() == {"approvals": []}
    bad = client.get("/api/approvals", {"status": "later"}, headers=basic("alice"))
    assert bad.status_code == 400 and "status must be one of" in bad.json()["faultstring"]


def test_answer_through_the_api(client, people, start):
    ex = start()
    a = approval_of(ex)
    r = answer(client, a.id, "alice", decision="approve", comment="ok", data={"amount": 9})
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "APPROVED" and body["result"]["approved"] is True
    assert body["responses"][0]["user"] == "alice" and body["responses"][0]["data"] == {"amount": 9, "reason": "ok"}
    assert tasks_of(ex)["pay"] == State.SUCCESS


def test_schema_invalid_data_is_400_with_errors_per_field(client, people, start):
    a = approval_of(start())
    r = answer(client, a.id, "alice", decision="approve", data={"amount": 0, "urgent": "no"})
    assert r.status_code == 400
    assert r.json()["errors"] == {
        "amount": ["0 is less than the minimum of 1"],
        "urgent": ["'no' is not of type 'boolean'"],
    }
    r = answer(client, a.id, "alice", decision="perhaps")
    assert r.status_code == 400 and "decision" in r.json()["errors"]
    assert ApprovalResponse.objects.count() == 0


def test_refusals_are_403_409_and_404(client, people, start):
    a = approval_of(start(quorum=2))
    r = answer(client, a.id, "erin", decision="approve", data={"amount": 1})
    assert r.status_code == 403 and "erin is not an assignee" in r.json()["faultstring"]
    assert client.get(f"/api/approvals/{a.id}", headers=basic("erin")).status_code == 403
    assert answer(client, a.id, "alice", decision="approve", data={"amount": 1}).status_code == 201
    second = answer(client, a.id, "alice", decision="reject")
    assert second.status_code == 409 and "already answered" in second.json()["faultstring"]
    assert answer(client, a.id, "bob", decision="reject").status_code == 201
    closed = answer(client, a.id, "bob", decision="reject")
    assert closed.status_code == 409
    assert answer(client, "nope", "alice", decision="approve").status_code == 404
    assert ApprovalResponse.objects.count() == 2


def test_the_operations_are_in_the_openapi_schema(client):
    paths = client.get("/api/schema", {"format": "json"}).json()["paths"]
    assert paths["/api/approvals/"]["get"]["operationId"] == "approvals_list"
    assert paths["/api/approvals/{approval_id}/"]["get"]["operationId"] == "approvals_retrieve"
    post = paths["/api/approvals/{approval_id}/responses/"]["post"]
    assert post["operationId"] == "approvals_answer"
    assert set(post["responses"]) == {"201", "400", "403", "404", "409"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Answer")
