"""With logins on, /v2 and the dashboard need the same permissions as the
operator console: reading needs a login, every change its permission, and
a refused request changes nothing and writes no audit row."""

import pytest
from django.contrib.auth.models import Permission, User

from ops.models import OperatorAction
from tests.approvals.conftest import approval_workflow
from workflows import services
from workflows.models import ActionExecution, WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

ASYNC = "version: '2.0'\nwait:\n  tasks:\n    w: {action: std.async_noop}\n"
OTHER = "version: '2.0'\nother:\n  tasks:\n    t: {action: std.noop}\n"


@pytest.fixture(autouse=True)
def logins_on(settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}


def user_with(*codenames):
    user = User.objects.create_user("-".join(codenames) or "nobody")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def as_user(client):
    def login(*codenames):
        client.force_login(user_with(*codenames))
        return client

    return login


def put_json(client, path, body):
    return client.put(path, body, content_type="application/json")


@pytest.fixture
def approval_action():
    services.save_workflows(approval_workflow())
    ex = services.start_execution("expense", {"amount": 10})
    return ActionExecution.objects.get(workflow_execution=ex, name="gust.approval")


def test_a_user_without_permissions_reads_but_changes_nothing(as_user, approval_action):
    client = as_user()
    services.save_workflows(ASYNC)
    ex = services.start_execution("wait")
    assert client.get("/v2/executions").status_code == 200
    refused = [
        put_json(client, f"/v2/action_executions/{approval_action.id}", {"state": "SUCCESS", "output": {}}),
        put_json(client, f"/v2/executions/{ex.id}", {"state": "CANCELLED"}),
        client.delete(f"/v2/executions/{ex.id}"),
        client.delete("/v2/workflows/wait"),
        client.post("/v2/workflows", OTHER, content_type="text/plain"),
        client.post("/v2/executions", {"workflow_name": "wait"}, content_type="application/json"),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "ops.complete_actions is needed" in refused[0].json()["faultstring"]
    assert "workflows.delete_workflowdefinition is needed" in refused[3].json()["faultstring"]
    assert ActionExecution.objects.get(id=approval_action.id).state == "RUNNING"
    assert WorkflowExecution.objects.get(id=ex.id).state == "RUNNING"
    assert WorkflowExecution.objects.count() == 2
    assert set(WorkflowDefinition.objects.values_list("name", flat=True)) == {"expense", "wait"}
    assert OperatorAction.objects.count() == 0


def test_completing_by_hand_over_v2_needs_the_permission_and_is_audited(as_user, approval_action):
    client = as_user("complete_actions")
    resp = put_json(
        client, f"/v2/action_executions/{approval_action.id}", {"state": "SUCCESS", "output": {"approved": True}}
    )
    assert resp.status_code == 200 and resp.json()["state"] == "SUCCESS"
    audit = OperatorAction.objects.get()
    assert audit.kind == "complete_action" and audit.target_id == approval_action.id
    assert audit.username == "complete_actions"


def test_operating_an_execution_over_v2_needs_the_permission_and_is_audited(as_user):
    services.save_workflows(ASYNC)
    ex = services.start_execution("wait")
    client = as_user("operate_executions")
    assert put_json(client, f"/v2/executions/{ex.id}", {"state": "PAUSED"}).status_code == 200
    assert WorkflowExecution.objects.get(id=ex.id).state == "PAUSED"
    assert OperatorAction.objects.get().kind == "pause"
    assert client.delete(f"/v2/executions/{ex.id}").status_code == 403  # deleting is another permission


def test_managing_definitions_and_starting_need_their_permissions(as_user):
    client = as_user("add_workflowdefinition", "delete_workflowdefinition", "add_workflowexecution")
    assert client.post("/v2/workflows", OTHER, content_type="text/plain").status_code == 201
    assert client.post("/v2/executions", {"workflow_name": "other"}, content_type="application/json").status_code == 201
    assert client.put("/v2/workflows", OTHER, content_type="text/plain").status_code == 403  # changing is another
    assert client.delete("/v2/workflows/other").status_code == 204


def test_the_dashboard_forms_need_the_same_permissions(as_user):
    services.save_workflows(ASYNC)
    client = as_user()
    upload = client.post("/workflows/new/", {"definition": OTHER})
    assert upload.status_code == 403 and "workflows.add_workflowdefinition" in upload.content.decode()
    start = client.post("/workflows/wait/", {"description": ""})
    assert start.status_code == 403 and "workflows.add_workflowexecution" in start.content.decode()
    assert not WorkflowDefinition.objects.filter(name="other").exists()
    assert WorkflowExecution.objects.count() == 0
