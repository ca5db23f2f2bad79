"""Workbooks, ad-hoc actions and namespaces over /v2 (and workflows.books):
shapes as Mistral's api/controllers/v2/workbook.py and action.py, bad input
refused with every error and nothing stored. Scenarios from Mistral's
tests/unit/api/v2/test_workbooks.py, test_actions.py,
tests/unit/services/test_workbook_service.py and
tests/unit/engine/test_adhoc_actions.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows import books, dispatch, services
from workflows.models import ActionDefinition, ActionExecution, Workbook, WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

WB = """\
---
version: '2.0'
name: my_wb
description: greetings
tags: [demo]
actions:
  concat_twice:  # Mistral's test_adhoc_actions.py, in flow style
    base: std.echo
    base-input: {output: "<% $.s1 %>+<% $.s2 %>"}
    input: [{s1: "a"}, s2]
    output: "<% $ %> and <% $ %>"
workflows:
  wf1:
    input: [str1, str2]
    output: {result: <% $.result %>}
    tasks:
      concat:
        action: concat_twice s1=<% $.str1 %> s2=<% $.str2 %>
        publish: {result: <% task(concat).result %>}
  wf2:
    tasks:
      t:
        action: std.noop
"""

WB_UPDATED = """\
---
version: '2.0'
name: my_wb
actions:
  shout:
    base: std.echo output=HEY
workflows:
  wf1:
    tasks:
      t:
        action: shout
"""

ACTIONS = """\
---
version: '2.0'
greet:
  description: says hello
  input:
    - name
    - greeting: hello
  base: std.echo
  base-input:
    output: "<% $.greeting %>, <% $.name %>"
  output: <% $.toUpper() %>
"""


def post_yaml(client, path, text, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    resp = client.post(f"{path}?{query}" if query else path, text, content_type="text/plain")
    return resp.status_code, resp.json() if resp.content else None


def put_yaml(client, path, text, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    resp = client.put(f"{path}?{query}" if query else path, text, content_type="text/plain")
    return resp.status_code, resp.json() if resp.content else None


def test_a_workbook_is_created_with_its_workflows_and_actions_under_qualified_names(client, api):
    status, body = post_yaml(client, "/v2/workbooks", WB)
    assert status == 201, body
    assert {k: body[k] for k in ("name", "namespace", "tags", "scope", "definition")} == {
        "name": "my_wb",
        "namespace": "",
        "tags": ["demo"],
        "scope": "private",
        "definition": WB,
    }
    names = sorted(w["name"] for w in api.get("/v2/workflows")[1]["workflows"])
    assert names == ["my_wb.wf1", "my_wb.wf2"]
    assert WorkflowDefinition.objects.get(name="my_wb.wf1").workbook_name == "my_wb"
    action = api.get("/v2/actions/my_wb.concat_twice")[1]
    assert (action["is_system"], action["input"]) == (False, 's1="a", s2')
    status, listed = api.get("/v2/workbooks")
    assert [w["name"] for w in listed["workbooks"]] == ["my_wb"]
    assert api.get("/v2/workbooks/my_wb")[1]["definition"] == WB


def test_a_workbook_workflow_runs_its_short_named_adhoc_action(client, api):
    """test_adhoc_actions.test_run_workflow_with_adhoc_action, through POST /v2/executions."""
    post_yaml(client, "/v2/workbooks", WB)
    ex = api.start("my_wb.wf1", {"str1": "a", "str2": "b"})
    assert ex["state"] == "SUCCESS", ex
    assert api.get(f"/v2/executions/{ex['id']}")[1]["output"] == '{"result": "a+b and a+b"}'
    action = ActionExecution.objects.get(workflow_execution_id=ex["id"])
    assert (action.name, action.input, action.output) == (
        "my_wb.concat_twice",
        {"s1": "a", "s2": "b"},
        {"result": "a+b and a+b"},
    )


def test_updating_a_workbook_replaces_its_workflows_and_actions_at_once(client, api):
    post_yaml(client, "/v2/workbooks", WB)
    status, body = put_yaml(client, "/v2/workbooks", WB_UPDATED)
    assert status == 200, body
    assert sorted(WorkflowDefinition.objects.values_list("name", flat=True)) == ["my_wb.wf1"]
    assert sorted(ActionDefinition.objects.values_list("name", flat=True)) == ["my_wb.shout"]
    assert body["updated_at"]
    ex = api.start("my_wb.wf1")
    assert ex["state"] == "SUCCESS"


def test_deleting_a_workbook_deletes_its_workflows_and_actions(client, api):
    post_yaml(client, "/v2/workbooks", WB)
    services.save_workflows("version: '2.0'\nalone:\n  tasks:\n    t: {action: std.noop}\n")
    assert api.delete("/v2/workbooks/my_wb")[0] == 204
    assert list(WorkflowDefinition.objects.values_list("name", flat=True)) == ["alone"]
    assert not ActionDefinition.objects.exists()
    status, body = api.delete("/v2/workbooks/my_wb")
    assert (status, body) == (404, {"faultstring": "Workbook not found [workbook_name=my_wb, namespace=]"})


def test_creating_a_workbook_twice_is_a_conflict_and_updating_a_missing_one_is_not_found(client):
    post_yaml(client, "/v2/workbooks", WB)
    status, body = post_yaml(client, "/v2/workbooks", WB)
    assert status == 409
    assert "Duplicate entry for WorkbookDefinition" in body["faultstring"]
    status, body = put_yaml(client, "/v2/workbooks", WB.replace("name: my_wb", "name: other"))
    assert (status, body["faultstring"]) == (404, "Workbook not found [name=other, namespace=]")
    assert Workbook.objects.count() == 1 and WorkflowDefinition.objects.count() == 2


def test_bad_workbooks_are_refused_with_every_error_and_nothing_is_stored(client):
    text = WB.replace("name: my_wb\n", "").replace("action: std.noop", "action: std.noop\n        on-success: nope")
    status, body = post_yaml(client, "/v2/workbooks", text)
    assert status == 400
    assert {"path": "name", "message": "'name' is a required property"} in body["errors"]
    assert {"path": "workflows.wf2.tasks.t.on-success[0]", "message": "unknown task 'nope'"} in body["errors"]
    assert body["faultstring"].startswith("Invalid DSL: ")
    assert not (Workbook.objects.exists() or WorkflowDefinition.objects.exists() or ActionDefinition.objects.exists())


def test_a_workbook_does_not_take_over_a_workflow_it_does_not_own(client):
    services.save_workflows("version: '2.0'\nmy_wb.wf2:\n  tasks:\n    t: {action: std.noop}\n")
    status, body = post_yaml(client, "/v2/workbooks", WB)
    assert status == 409
    assert "my_wb.wf2 exists in namespace '' and belongs to no workbook" in body["faultstring"]
    assert not Workbook.objects.exists() and WorkflowDefinition.objects.count() == 1
    assert not ActionDefinition.objects.exists()


def test_validate_answers_valid_or_every_error(client):
    status, body = post_yaml(client, "/v2/workbooks/validate", WB)
    assert (status, body) == (200, {"valid": True})
    status, body = post_yaml(client, "/v2/workbooks/validate", "version: '2.0'\nname: x\nworkflows: 3\n")
    assert status == 200 and body["valid"] is False
    assert body["errors"] == [{"path": "workflows", "message": "must be a mapping of names, got int"}]
    status, body = post_yaml(client, "/v2/actions/validate", "version: '2.0'\na:\n  base-input: {x: 1}\n")
    assert body["valid"] is False and body["errors"][0]["path"] == "a"


# --- ad-hoc actions ---------------------------------------------------------------


def test_adhoc_actions_are_created_listed_beside_built_ins_run_updated_and_deleted(client, api):
    status, body = post_yaml(client, "/v2/actions", ACTIONS)
    assert status == 201, body
    (created,) = body["actions"]
    assert {k: created[k] for k in ("name", "is_system", "input", "description", "namespace")} == {
        "name": "greet",
        "is_system": False,
        "input": 'name, greeting="hello"',
        "description": "says hello",
        "namespace": "",
    }
    listed = {a["name"]: a["is_system"] for a in api.get("/v2/actions")[1]["actions"]}
    assert listed["greet"] is False and listed["std.echo"] is True
    api.create_workflow(
        "version: '2.0'\nhi:\n  tasks:\n    t:\n      action: greet name=ann\n"
        "      publish: {said: <% task().result %>}\n"
    )
    ex = api.start("hi")
    assert ex["output"] == '{"said": "HELLO, ANN"}'
    status, body = put_yaml(client, "/v2/actions", ACTIONS.replace("toUpper", "toLower"))
    assert status == 200 and body["actions"][0]["id"] == created["id"]
    assert api.start("hi")["output"] == '{"said": "hello, ann"}'
    assert api.get(f"/v2/actions/{created['id']}")[1]["name"] == "greet"
    assert api.delete("/v2/actions/greet")[0] == 204
    assert api.get("/v2/actions/greet")[0] == 404


def test_a_missing_adhoc_input_fails_the_task_with_mistral_s_message(client, api):
    post_yaml(client, "/v2/actions", ACTIONS)
    api.create_workflow("version: '2.0'\nhi:\n  tasks:\n    t:\n      action: greet\n")
    ex = api.start("hi")
    assert ex["state"] == "ERROR"
    assert "Invalid input [name=greet, class=mistral.actions.adhoc.AdHocAction, missing=['name']]" in ex["state_info"]


def test_an_adhoc_action_with_a_worker_base_runs_the_base_in_the_worker(client, api, monkeypatch):
    post_yaml(
        client, "/v2/actions", "version: '2.0'\nnap:\n  base: std.sleep\n  base-input: {seconds: 0}\n  output: slept\n"
    )
    api.create_workflow("version: '2.0'\nrest:\n  tasks:\n    t: {action: nap}\n")
    ex = services.start_execution("rest")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert (action.name, action.state, action.runtime_context["adhoc"]["base"]) == ("nap", "RUNNING", "std.sleep")
    sent = []
    monkeypatch.setattr(dispatch, "enqueue", sent.extend)
    assert dispatch.redispatch_unclaimed(now=timezone.now() + timedelta(seconds=301)) == 1  # found by its base
    assert sent == [action.id]
    dispatch.run_action(action.id)
    action.refresh_from_db()
    assert (action.state, action.output) == ("SUCCESS", {"result": "slept"})
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"


def test_bad_adhoc_actions_are_refused_and_nothing_is_stored(client, api):
    status, body = post_yaml(
        client, "/v2/actions", "version: '2.0'\nok:\n  base: std.noop\nstd.echo:\n  base: std.noop\n"
    )
    assert status == 400
    assert body["errors"] == [{"path": "std.echo", "message": "Attempt to modify a system action: std.echo"}]
    post_yaml(client, "/v2/actions", ACTIONS)
    status, body = post_yaml(client, "/v2/actions", ACTIONS)
    assert status == 409
    assert list(ActionDefinition.objects.values_list("name", flat=True)) == ["greet"]
    assert api.delete("/v2/actions/std.echo") == (400, {"faultstring": "Attempt to delete a system action: std.echo"})


def test_a_workbook_s_action_is_changed_only_through_its_workbook(client, api):
    post_yaml(client, "/v2/workbooks", WB)
    status, body = api.delete("/v2/actions/my_wb.concat_twice")
    assert status == 409 and "belongs to workbook my_wb" in body["faultstring"]


# --- namespaces ----------------------------------------------------------------------


def test_the_same_names_in_two_namespaces_are_two_definitions(client, api):
    """test_adhoc_actions.test_adhoc_action_definition_with_namespace and test_adhoc_action_execution_with_namespace."""
    for ns in ("ns1", "ns2"):
        assert post_yaml(client, "/v2/workbooks", WB, namespace=ns)[0] == 201
    assert WorkflowDefinition.objects.filter(name="my_wb.wf1").count() == 2
    assert ActionDefinition.objects.filter(name="my_wb.concat_twice").count() == 2
    assert api.get("/v2/workbooks/my_wb")[0] == 404
    assert api.get("/v2/workbooks/my_wb", namespace="ns1")[1]["namespace"] == "ns1"
    assert [w["namespace"] for w in api.get("/v2/workbooks", namespace="ns2")[1]["workbooks"]] == ["ns2"]
    assert len(api.get("/v2/workflows")[1]["workflows"]) == 4
    assert {w["namespace"] for w in api.get("/v2/workflows", namespace="ns1")[1]["workflows"]} == {"ns1"}
    ex = api.start("my_wb.wf1", {"str1": "a", "str2": "b"}, workflow_namespace="ns2")
    assert (ex["state"], ex["workflow_namespace"]) == ("SUCCESS", "ns2")
    # As Mistral's get_workflow_definition: a name is found only in the namespace given.
    status, body = api.post("/v2/executions", {"workflow_name": "my_wb.wf1", "input": {"str1": 1, "str2": 2}})
    assert status == 404 and "namespace=" in body["faultstring"]
    assert api.delete("/v2/workbooks/my_wb?namespace=ns1")[0] == 204
    assert WorkflowDefinition.objects.filter(name="my_wb.wf1").get().namespace == "ns2"


def test_actions_and_workflows_honour_the_namespace_parameter(client, api):
    post_yaml(client, "/v2/actions", ACTIONS, namespace="team")
    assert "greet" not in {a["name"] for a in api.get("/v2/actions")[1]["actions"]}
    assert [a["name"] for a in api.get("/v2/actions", namespace="team")[1]["actions"]] == ["greet"]
    assert api.get("/v2/actions/greet/team")[1]["namespace"] == "team"
    assert api.get("/v2/actions/greet")[0] == 404
    # An ad-hoc action is looked up in the execution's namespace only.
    services.save_workflows("version: '2.0'\nhi:\n  tasks:\n    t: {action: greet name=x}\n", "team")
    services.save_workflows("version: '2.0'\nhi:\n  tasks:\n    t: {action: greet name=x}\n")
    assert api.start("hi", workflow_namespace="team")["output"] == "{}"
    failed = api.start("hi")
    assert "Failed to find action [action_name=greet, namespace=]" in failed["state_info"]
    assert api.delete("/v2/workflows/hi?namespace=team")[0] == 204
    assert list(WorkflowDefinition.objects.values_list("namespace", flat=True)) == [""]
    assert api.delete("/v2/actions/greet/team")[0] == 204


def test_a_sub_workflow_name_resolves_in_the_workbook_then_the_namespace_then_the_default_one(client):
    """engine/utils.py resolve_workflow_definition and load_workflow_definition, for sub-workflows."""
    post_yaml(client, "/v2/workbooks", WB, namespace="ns1")
    services.save_workflows("version: '2.0'\nwf2:\n  tasks:\n    t: {action: std.noop}\n")
    assert books.resolve_workflow("wf2", "ns1", "my_wb").name == "my_wb.wf2"
    assert books.resolve_workflow("wf2", "ns1", None).namespace == ""
    assert books.resolve_workflow("my_wb.wf1", "ns1").namespace == "ns1"
    with pytest.raises(books.NotFound):
        books.resolve_workflow("wf1", "", "my_wb")


def test_a_namespace_longer_than_the_column_is_refused(client):
    status, body = post_yaml(client, "/v2/workbooks", WB, namespace="n" * 256)
    assert (status, body) == (400, {"faultstring": "namespace must be a string of at most 255 characters"})
    assert (
        post_yaml(
            client, "/v2/workflows", "version: '2.0'\nw:\n  tasks:\n    t: {action: std.noop}\n", namespace="n" * 256
        )[0]
        == 400
    )
    assert not (Workbook.objects.exists() or WorkflowDefinition.objects.exists())


def test_an_adhoc_action_over_gust_approval_asks_people_and_transforms_their_answer(client):
    """Gust's approvals through an ad-hoc action: the approval is opened
    from the base input, and the output applies to the decision."""
    from django.contrib.auth.models import User

    from approvals import services as approvals
    from approvals.models import Approval

    books.save_actions(
        "version: '2.0'\nask_boss:\n  input: [what]\n  base: gust.approval\n"
        "  base-input: {title: 'Buy <% $.what %>?', assignees: [boss]}\n"
        "  output: <% $.approved %>\n"
    )
    services.save_workflows("version: '2.0'\nbuy:\n  tasks:\n    ask:\n      action: ask_boss what=tea\n")
    ex = services.start_execution("buy")
    approval = Approval.objects.get(execution_id=ex.id)
    assert approval.title == "Buy tea?"
    approvals.answer(approval.id, User.objects.create_user("boss"), "approve")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert (action.name, action.output) == ("ask_boss", {"result": True})
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"


def test_workbooks_and_actions_need_the_permissions_that_manage_workflows(client, settings):
    """Same rules as /v2/workflows (tests/api/test_permissions.py): reading needs a login, a change its permission."""
    from django.contrib.auth.models import Permission, User

    settings.GUST = {**settings.GUST, "API_AUTH": True}
    books.save_workbook(WB)
    books.save_actions(ACTIONS)
    user = User.objects.create_user("reader")
    client.force_login(user)
    assert client.get("/v2/workbooks").status_code == 200 and client.get("/v2/actions/greet").status_code == 200
    refused = [
        post_yaml(client, "/v2/workbooks", WB.replace("my_wb", "other"))[0],
        put_yaml(client, "/v2/workbooks", WB_UPDATED)[0],
        client.delete("/v2/workbooks/my_wb").status_code,
        post_yaml(client, "/v2/actions", ACTIONS.replace("greet:", "greet2:"))[0],
        put_yaml(client, "/v2/actions", ACTIONS.replace("hello", "hi"))[0],
        client.delete("/v2/actions/greet").status_code,
    ]
    assert refused == [403] * 6
    assert sorted(WorkflowDefinition.objects.values_list("name", flat=True)) == ["my_wb.wf1", "my_wb.wf2"]
    assert list(ActionDefinition.objects.order_by("name").values_list("name", "input")) == [
        ("greet", 'name, greeting="hello"'),
        ("my_wb.concat_twice", 's1="a", s2'),
    ]
    user.user_permissions.add(Permission.objects.get(codename="add_workflowdefinition"))
    client.force_login(User.objects.get(id=user.id))
    assert post_yaml(client, "/v2/workbooks", WB.replace("my_wb", "other"))[0] == 201
    client.logout()
    assert client.get("/v2/workbooks").status_code in (401, 403)


def test_inside_a_workbook_a_sub_workflow_s_short_name_is_the_workbook_s_own_first(client, api):
    """engine/utils.py resolve_workflow_definition: <workbook>.<name>, then <name>; the child inherits the workbook."""
    services.save_workflows("version: '2.0'\nchild:\n  output: {who: outside}\n  tasks:\n    t: {action: std.noop}\n")
    text = """\
version: '2.0'
name: fam
actions:
  hi:
    base: std.echo output=inside
workflows:
  parent:
    tasks:
      call:
        workflow: child
        publish: {got: <% task().result %>}
  child:
    tasks:
      t:
        action: hi
        publish: {who: <% task().result %>}
"""
    assert post_yaml(client, "/v2/workbooks", text, namespace="ns")[0] == 201
    ex = api.start("fam.parent", workflow_namespace="ns")
    assert ex["state"] == "SUCCESS", ex
    assert ex["output"] == '{"got": {"who": "inside"}}'  # fam.child, whose short-named action is fam.hi
    child = WorkflowExecution.objects.get(task_execution_id__isnull=False)
    assert (child.workflow_name, child.workflow_namespace, child.runtime["wb_name"]) == ("fam.child", "ns", "fam")
