"""The /v2 HTTP contract through Django's test client: shapes, status codes
and bad input. Reference shapes: shared/mistral-reference/api-shapes.md."""

from __future__ import annotations

import json

import pytest

from workflows.models import ActionExecution, TaskExecution, WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"

ECHO_WF = """\
---
version: '2.0'
echo_wf:
  input:
    - who
    - greeting: hi
  output:
    said: <% $.said %>
  tasks:
    say:
      action: std.echo output=<% $.greeting + ' ' + $.who %>
      publish:
        said: <% task().result %>
"""

BROKEN_YAML = """\
---
version: '2.0'
broken_yaml:
  tasks:
    t1:
      action: std.noop
     on-success: t2
  - nope: [
"""

SCHEMA_ERRORS = """\
---
version: '2.0'
wf:
  tasks:
    t1:
      action: std.noop
      bogus: 1
    t2:
      join: sometimes
"""

GRAPH_ERRORS = """\
---
version: '2.0'
wf:
  tasks:
    t1:
      action: std.noop
      on-success:
        - t2
        - nope
    t2:
      join: 3
      action: std.nope
"""


def decoded(resource: dict, *fields: str) -> dict:
    """Mistral sends input/output/params/... as JSON strings inside JSON."""
    return {f: json.loads(resource[f]) if resource[f] is not None else None for f in fields}


# --- root and versions -------------------------------------------------------


def test_root_and_versions(api):
    assert api.get("/v2/") == (200, {"uri": "http://testserver/v2"})
    status, body = api.get("/versions")
    assert status == 200
    assert body == {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"href": "http://testserver/v2", "target": "v2", "rel": "self"}],
            }
        ]
    }


# --- workflows -----------------------------------------------------------------


def test_create_workflow_shape(api, cli_demo_yaml):
    status, body = api.post_yaml("/v2/workflows", cli_demo_yaml)
    assert status == 201
    (wf,) = body["workflows"]
    assert wf["name"] == "cli_demo" and wf["namespace"] == "" and wf["scope"] == "private"
    assert wf["input"] == 'name="world"'
    assert wf["interface"] == {"input": [{"name": "world"}], "output": ["echoed", "async_result", "joined"]}
    assert wf["definition"] == cli_demo_yaml
    assert wf["tags"] == [] and wf["project_id"] == "<default-project>"
    assert len(wf["checksum"]) == 32 and "updated_at" not in wf

    assert api.get(f"/v2/workflows/{wf['id']}")[1]["name"] == "cli_demo"
    assert api.get("/v2/workflows/cli_demo")[1]["id"] == wf["id"]
    status, listed = api.get("/v2/workflows")
    assert [w["name"] for w in listed["workflows"]] == ["cli_demo"]


def test_duplicate_workflow_is_409(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    status, body = api.post_yaml("/v2/workflows", cli_demo_yaml)
    assert status == 409
    assert body["faultstring"] == (
        "Duplicate entry for WorkflowDefinition ['name', 'namespace', 'project_id']: cli_demo, , None"
    )
    assert WorkflowDefinition.objects.count() == 1


def test_broken_yaml_is_400_with_line_and_column(api):
    status, body = api.post_yaml("/v2/workflows", BROKEN_YAML)
    assert status == 400
    assert body["faultstring"].startswith("Definition could not be parsed")
    assert "line 7, column 6" in body["faultstring"]
    assert not WorkflowDefinition.objects.exists()


def test_yaql_syntax_error_is_400(api, cli_bad_yaml):
    status, body = api.post_yaml("/v2/workflows", cli_bad_yaml)
    assert status == 400
    assert "Parse error: unexpected end of statement" in body["faultstring"]
    assert [e["path"] for e in body["errors"]] == ["cli_bad.tasks.t1.input.output"]
    assert not WorkflowDefinition.objects.exists()


def test_schema_errors_are_all_reported_with_paths(api):
    status, body = api.post_yaml("/v2/workflows", SCHEMA_ERRORS)
    assert status == 400
    errors = {e["path"]: e["message"] for e in body["errors"]}
    assert errors["wf.tasks.t1.bogus"] == "unknown keyword"
    assert "sometimes" in errors["wf.tasks.t2.join"]
    for path, message in errors.items():
        assert f"{path}: {message}" in body["faultstring"]
    assert not WorkflowDefinition.objects.exists()


def test_graph_errors_are_all_reported_with_paths(api):
    status, body = api.post_yaml("/v2/workflows", GRAPH_ERRORS)
    assert status == 400
    lines = [f"{e['path']}: {e['message']}" for e in body["errors"]]
    assert "wf.tasks.t1.on-success[1]: unknown task 'nope'" in lines
    assert "wf.tasks.t2.join: join: 3 but only 1 task(s) lead to 't2'" in lines
    assert not any(line.startswith("wf.tasks.t2.action") for line in lines)  # Mistral: checked when it runs
    assert len(lines) == 2
    assert all(line in body["faultstring"] for line in lines)
    assert not WorkflowDefinition.objects.exists()


def test_errors_of_every_workflow_in_a_file_are_reported(api):
    text = SCHEMA_ERRORS + GRAPH_ERRORS.replace("---\nversion: '2.0'\nwf:", "wf2:")
    status, body = api.post_yaml("/v2/workflows", text)
    assert status == 400
    paths = {e["path"] for e in body["errors"]}
    assert {"wf.tasks.t1.bogus", "wf.tasks.t2.join", "wf2.tasks.t1.on-success[1]"} <= paths
    assert not WorkflowDefinition.objects.exists()


def test_schema_and_graph_errors_of_one_workflow_together(api):
    text = "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n      on-success: nope\n      bogus: 1\n"
    status, body = api.post_yaml("/v2/workflows", text)
    assert status == 400
    assert {f"{e['path']}: {e['message']}" for e in body["errors"]} == {
        "wf.tasks.t1.bogus: unknown keyword",
        "wf.tasks.t1.on-success[0]: unknown task 'nope'",
    }


def test_a_file_with_one_bad_workflow_stores_none(api):
    good = ECHO_WF
    bad = "\n".join(line for line in GRAPH_ERRORS.splitlines()[2:])
    status, body = api.post_yaml("/v2/workflows", good + bad + "\n")
    assert status == 400, body
    assert not WorkflowDefinition.objects.exists()


def test_empty_or_json_body_is_400(api):
    status, body = api.post_yaml("/v2/workflows", "")
    assert status == 400 and "text/plain" in body["faultstring"]
    status, body = api.post("/v2/workflows", {"definition": ECHO_WF})
    assert status == 400 and "faultstring" in body


def test_validate_endpoint(api, cli_demo_yaml, cli_bad_yaml):
    assert api.post_yaml("/v2/workflows/validate", cli_demo_yaml) == (200, {"valid": True})
    status, body = api.post_yaml("/v2/workflows/validate", cli_bad_yaml)
    assert status == 200
    assert body["valid"] is False
    assert "Parse error: unexpected end of statement" in body["error"]
    assert body["errors"][0]["path"] == "cli_bad.tasks.t1.input.output"
    status, body = api.post_yaml("/v2/workflows/validate", BROKEN_YAML)
    assert status == 200 and body["valid"] is False and "line 7, column 6" in body["error"]
    assert not WorkflowDefinition.objects.exists()


def test_update_workflow_with_put(api):
    api.create_workflow(ECHO_WF)
    changed = ECHO_WF.replace("greeting: hi", "greeting: hello")
    resp = api.client.put("/v2/workflows", changed, content_type="text/plain")
    assert resp.status_code == 200
    (wf,) = resp.json()["workflows"]
    assert wf["input"] == 'who, greeting="hello"' and "updated_at" in wf
    assert WorkflowDefinition.objects.get().definition == changed


def test_delete_workflow(api):
    wf = api.create_workflow(ECHO_WF)
    status, body = api.delete(f"/v2/workflows/{wf['name']}")
    assert (status, body) == (204, None)
    status, body = api.get(f"/v2/workflows/{wf['name']}")
    assert status == 404
    assert body["faultstring"] == "Workflow not found [workflow_identifier=echo_wf, namespace=]"
    assert api.delete("/v2/workflows/echo_wf")[0] == 404


# --- executions --------------------------------------------------------------


def test_start_execution_with_input_as_json_string(api, cli_demo_yaml):
    wf = api.create_workflow(cli_demo_yaml)
    status, ex = api.post(
        "/v2/executions", {"workflow_name": "cli_demo", "input": '{"name": "api"}', "description": "api shapes demo"}
    )
    assert status == 201
    assert ex["workflow_id"] == wf["id"] and ex["workflow_name"] == "cli_demo" and ex["workflow_namespace"] == ""
    assert ex["description"] == "api shapes demo" and ex["state"] == "RUNNING" and ex["state_info"] is None
    assert ex["task_execution_id"] is None and ex["root_execution_id"] is None
    assert decoded(ex, "input", "output", "params") == {
        "input": {"name": "api"},
        "output": {},
        "params": {"namespace": "", "env": {}},
    }
    assert "published_global" not in ex

    status, shown = api.get(f"/v2/executions/{ex['id']}")
    assert status == 200 and shown["published_global"] == "{}"
    assert {k: v for k, v in shown.items() if k != "published_global"} == ex


def test_start_execution_with_input_and_params_as_objects(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo", {"name": "obj"}, params={"env": {"k": "v"}})
    assert decoded(ex, "input", "params") == {"input": {"name": "obj"}, "params": {"env": {"k": "v"}, "namespace": ""}}
    ex = api.start("cli_demo", params='{"env": {"k": "s"}}')
    assert decoded(ex, "input", "params") == {
        "input": {"name": "world"},
        "params": {"env": {"k": "s"}, "namespace": ""},
    }


def test_start_by_workflow_id(api):
    wf = api.create_workflow(ECHO_WF)
    status, ex = api.post("/v2/executions", {"workflow_id": wf["id"], "input": {"who": "id"}})
    assert status == 201 and ex["state"] == "SUCCESS"
    assert decoded(ex, "output") == {"output": {"said": "hi id"}}


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"workflow_name": "no_such_workflow"},
            404,
            "Workflow not found [workflow_identifier=no_such_workflow, namespace=]",
        ),
        ({"workflow_name": "echo_wf", "input": {"who": "x", "nme": "typo"}}, 400, "unexpected input 'nme'"),
        ({"workflow_name": "echo_wf", "input": {}}, 400, "missing required input 'who'"),
        ({"workflow_name": "echo_wf"}, 400, "missing required input 'who'"),
        ({"workflow_name": "echo_wf", "input": ["who"]}, 400, "input must be a JSON object"),
        ({"workflow_name": "echo_wf", "input": '["who"]'}, 400, "input must be a JSON object"),
        ({"workflow_name": "echo_wf", "input": "{not json"}, 400, "input is not valid JSON"),
        ({"workflow_name": "echo_wf", "input": {"who": "x"}, "params": 3}, 400, "params must be a JSON object"),
        ({"input": {"who": "x"}}, 400, "workflow_name or workflow_id is required"),
    ],
)
def test_start_execution_bad_input(api, body, status, message):
    api.create_workflow(ECHO_WF)
    got_status, got = api.post("/v2/executions", body)
    assert got_status == status, got
    assert message in got["faultstring"]
    assert not WorkflowExecution.objects.exists()
    assert not TaskExecution.objects.exists()


def test_start_execution_body_not_an_object(api):
    api.create_workflow(ECHO_WF)
    status, body = api.post("/v2/executions", ["echo_wf"])
    assert status == 400 and "JSON object" in body["faultstring"]
    resp = api.client.post("/v2/executions", "{broken", content_type="application/json")
    assert resp.status_code == 400 and "faultstring" in resp.json()
    assert not WorkflowExecution.objects.exists()


@pytest.mark.parametrize(
    "path, faultstring",
    [
        (f"/v2/executions/{UNKNOWN}", f"WorkflowExecution not found [id={UNKNOWN}]"),
        (f"/v2/executions/{UNKNOWN}/tasks", f"WorkflowExecution not found [id={UNKNOWN}]"),
        (f"/v2/tasks/{UNKNOWN}", f"TaskExecution not found [id={UNKNOWN}]"),
        (f"/v2/tasks/{UNKNOWN}/action_executions", f"TaskExecution not found [id={UNKNOWN}]"),
        (f"/v2/action_executions/{UNKNOWN}", f"ActionExecution not found [id={UNKNOWN}]"),
        ("/v2/workflows/nope", "Workflow not found [workflow_identifier=nope, namespace=]"),
        ("/v2/actions/std.nope", "Action not found [name=std.nope, namespace=]"),  # Mistral's wording
    ],
)
def test_unknown_ids_are_404(api, path, faultstring):
    assert api.get(path) == (404, {"faultstring": faultstring})


def test_task_and_action_execution_shapes(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo", {"name": "api"})
    status, body = api.get(f"/v2/executions/{ex['id']}/tasks")
    assert status == 200
    tasks = {t["name"]: t for t in body["tasks"]}
    assert [t["name"] for t in body["tasks"]] == ["say_hello", "wait_external", "join_both"]  # creation order
    wait = tasks["wait_external"]
    assert {
        k: wait[k]
        for k in (
            "type",
            "workflow_name",
            "workflow_namespace",
            "workflow_id",
            "workflow_execution_id",
            "state",
            "state_info",
            "processed",
            "tags",
        )
    } == {
        "type": "ACTION",
        "workflow_name": "cli_demo",
        "workflow_namespace": "",
        "workflow_id": ex["workflow_id"],
        "workflow_execution_id": ex["id"],
        "state": "RUNNING",
        "state_info": None,
        "processed": False,
        "tags": [],
    }
    assert decoded(wait, "result", "published", "runtime_context") == {
        "result": [],
        "published": {},
        "runtime_context": {},
    }
    assert wait["started_at"] and wait["finished_at"] is None
    assert decoded(tasks["say_hello"], "result", "published") == {
        "result": "hello api",
        "published": {"echoed": "hello api"},
    }
    assert tasks["join_both"]["state"] == "WAITING"

    assert api.get(f"/v2/tasks/{wait['id']}") == (200, wait)

    status, body = api.get(f"/v2/tasks/{wait['id']}/action_executions")
    (action,) = body["action_executions"]
    assert {
        k: action[k]
        for k in (
            "workflow_name",
            "workflow_namespace",
            "task_execution_id",
            "state",
            "state_info",
            "tags",
            "name",
            "description",
            "accepted",
            "output",
        )
    } == {
        "workflow_name": "cli_demo",
        "workflow_namespace": "",
        "task_execution_id": wait["id"],
        "state": "RUNNING",
        "state_info": None,
        "tags": None,
        "name": "std.async_noop",
        "description": "",
        "accepted": False,
        "output": None,
    }
    assert decoded(action, "input") == {"input": {}}
    assert api.get(f"/v2/action_executions/{action['id']}") == (200, action)

    status, body = api.get("/v2/action_executions", task_execution_id=tasks["say_hello"]["id"])
    (echo,) = body["action_executions"]
    assert echo["name"] == "std.echo" and echo["accepted"] is True
    assert decoded(echo, "output") == {"output": {"result": "hello api"}}


# --- completing async actions -------------------------------------------------


def _async_action(api, ex: dict) -> dict:
    status, body = api.get("/v2/action_executions", workflow_execution_id=ex["id"], name="std.async_noop")
    (action,) = body["action_executions"]
    return action


def test_complete_async_action_with_put(api, cli_demo_yaml, django_capture_on_commit_callbacks):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo", '{"name": "api"}')
    action = _async_action(api, ex)

    with django_capture_on_commit_callbacks(execute=True):
        status, done = api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": {"value": 3}})
    assert status == 200
    assert done["state"] == "SUCCESS" and done["accepted"] is True
    assert decoded(done, "output") == {"output": {"result": {"value": 3}}}

    task = api.get(f"/v2/tasks/{action['task_execution_id']}")[1]
    assert task["state"] == "SUCCESS" and task["processed"] is True and task["finished_at"]
    assert decoded(task, "result", "published") == {"result": {"value": 3}, "published": {"async_result": {"value": 3}}}

    shown = api.get(f"/v2/executions/{ex['id']}")[1]
    assert shown["state"] == "SUCCESS"
    assert decoded(shown, "output") == {
        "output": {"echoed": "hello api", "async_result": {"value": 3}, "joined": "joined"}
    }

    # The same result again: 200 and nothing changes.
    before = ActionExecution.objects.get(id=action["id"]).updated_at
    status, again = api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": {"value": 3}})
    assert status == 200 and again == done
    assert ActionExecution.objects.get(id=action["id"]).updated_at == before

    # A different result: 409 with the current state; nothing changes.
    status, body = api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": {"value": 4}})
    assert status == 409
    assert body["state"] == "SUCCESS" and "already SUCCESS" in body["faultstring"]
    status, body = api.put(f"/v2/action_executions/{action['id']}", {"state": "ERROR", "output": "boom"})
    assert status == 409 and body["state"] == "SUCCESS"
    assert ActionExecution.objects.get(id=action["id"]).output == {"result": {"value": 3}}
    assert TaskExecution.objects.get(id=action["task_execution_id"]).result == {"value": 3}
    assert WorkflowExecution.objects.get(id=ex["id"]).state == "SUCCESS"


def test_complete_async_action_with_post_alias_and_plain_values(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    for i, (sent, stored) in enumerate(
        [(3, 3), ("3", 3), ('{"a": 1}', {"a": 1}), ("plain text", "plain text"), (None, None)]
    ):
        ex = api.start("cli_demo")
        action = _async_action(api, ex)
        verb = api.post if i % 2 == 0 else api.put
        status, done = verb(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": sent})
        assert status == 200, done
        assert decoded(done, "output") == {"output": {"result": stored}}
        ex = api.get(f"/v2/executions/{ex['id']}")[1]
        assert ex["state"] == "SUCCESS"
        assert json.loads(ex["output"])["async_result"] == stored


def test_complete_via_async_actions_guide_path(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    action = _async_action(api, ex)
    status, done = api.post(f"/v2/action-executions/{action['id']}", {"state": "SUCCESS", "output": "ok"})
    assert status == 200 and done["state"] == "SUCCESS"


def test_complete_async_action_with_error(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    action = _async_action(api, ex)
    status, done = api.put(f"/v2/action_executions/{action['id']}", {"state": "ERROR", "output": "it broke"})
    assert status == 200 and done["state"] == "ERROR"
    assert api.get(f"/v2/tasks/{action['task_execution_id']}")[1]["state"] == "ERROR"
    assert api.get(f"/v2/executions/{ex['id']}")[1]["state"] == "ERROR"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"state": "RUNNING", "output": 1}, "SUCCESS or ERROR"),
        ({"state": "CANCELLED"}, "SUCCESS or ERROR"),
        ({"output": {"value": 3}}, "'state'"),
        (["SUCCESS"], "'state'"),
    ],
)
def test_complete_async_action_bad_request(api, cli_demo_yaml, body, message):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    action = _async_action(api, ex)
    status, got = api.put(f"/v2/action_executions/{action['id']}", body)
    assert status == 400
    assert message in got["faultstring"]
    assert ActionExecution.objects.get(id=action["id"]).state == "RUNNING"


def test_complete_unknown_action_is_404(api):
    for verb in (api.put, api.post):
        status, body = verb(f"/v2/action_executions/{UNKNOWN}", {"state": "SUCCESS", "output": {"value": 3}})
        assert (status, body) == (404, {"faultstring": f"ActionExecution not found [id={UNKNOWN}]"})


# --- execution state changes and deletion ------------------------------------


def test_pause_resume_cancel(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    path = f"/v2/executions/{ex['id']}"
    for state in ("PAUSED", "RUNNING", "CANCELLED"):
        status, body = api.put(path, {"state": state})
        assert status == 200, body
        assert body["state"] == state and "published_global" in body
        assert WorkflowExecution.objects.get(id=ex["id"]).state == state

    status, body = api.put(path, {"state": "RUNNING"})
    assert status == 409
    assert body == {"faultstring": f"Can not resume execution {ex['id']} in state CANCELLED", "state": "CANCELLED"}
    assert WorkflowExecution.objects.get(id=ex["id"]).state == "CANCELLED"
    status, body = api.put(path, {"state": "PAUSED"})
    assert status == 409 and body["state"] == "CANCELLED"

    # the async action of a cancelled run can no longer be completed
    action = _async_action(api, ex)
    status, body = api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": 1})
    assert status == 409, body
    assert WorkflowExecution.objects.get(id=ex["id"]).state == "CANCELLED"


def test_a_cancel_with_state_info_keeps_that_message(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    status, body = api.put(f"/v2/executions/{ex['id']}", {"state": "CANCELLED", "state_info": "not needed any more"})
    assert status == 200 and body["state"] == "CANCELLED" and body["state_info"] == "not needed any more"
    assert WorkflowExecution.objects.get(id=ex["id"]).state_info == "not needed any more"
    status, body = api.put(f"/v2/executions/{api.start('cli_demo')['id']}", {"state": "CANCELLED", "state_info": 3})
    assert status == 400 and "state_info must be a string" in body["faultstring"]


def test_update_execution_bad_requests(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    path = f"/v2/executions/{ex['id']}"
    status, body = api.put(path, {"state": "SUCCESS"})
    assert status == 400 and "PAUSED, RUNNING or CANCELLED" in body["faultstring"]
    assert api.put(path, {})[0] == 400
    assert api.put(f"/v2/executions/{UNKNOWN}", {"state": "PAUSED"}) == (
        404,
        {"faultstring": f"WorkflowExecution not found [id={UNKNOWN}]"},
    )
    status, body = api.put(path, {"description": "renamed"})
    assert status == 200 and body["description"] == "renamed" and body["state"] == "RUNNING"


def test_delete_execution(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    ex = api.start("cli_demo")
    path = f"/v2/executions/{ex['id']}"
    status, body = api.delete(path)
    assert status == 409 and body["state"] == "RUNNING"  # cancel it first
    api.put(path, {"state": "CANCELLED"})
    assert api.delete(path) == (204, None)
    assert api.get(path)[0] == 404
    assert not TaskExecution.objects.exists() and not ActionExecution.objects.exists()
    assert api.delete(path)[0] == 404


# --- lists: pagination, sorting, filters --------------------------------------


@pytest.fixture
def five_executions(api, cli_demo_yaml):
    api.create_workflow(cli_demo_yaml)
    api.create_workflow(ECHO_WF)
    running = [api.start("cli_demo", description=d)["id"] for d in ("c", "a")]
    done = [api.start("echo_wf", {"who": w}, description=d)["id"] for w, d in (("x", "e"), ("y", "b"))]
    cancelled = api.start("cli_demo", description="d")["id"]
    api.put(f"/v2/executions/{cancelled}", {"state": "CANCELLED"})
    return {"RUNNING": running, "SUCCESS": done, "CANCELLED": [cancelled]}


def test_pagination_walks_every_row_once(api, five_executions):
    status, body = api.get("/v2/executions")
    everything = [e["id"] for e in body["executions"]]
    assert len(everything) == 5 and "next" not in body

    seen, params, pages = [], {"limit": 2}, 0
    while True:
        status, body = api.get("/v2/executions", **params)
        assert status == 200
        pages += 1
        seen += [e["id"] for e in body["executions"]]
        if "next" not in body:
            break
        assert body["next"].startswith("http://testserver/v2/executions?")
        assert "limit=2" in body["next"]
        params = {"limit": 2, "marker": body["executions"][-1]["id"]}
        assert f"marker={params['marker']}" in body["next"]
    assert seen == everything and pages == 3


def test_pagination_follows_next_links_with_sorting(api, five_executions):
    url, seen = "/v2/executions?limit=2&sort_keys=description&sort_dirs=desc", []
    while url:
        body = api.client.get(url).json()
        seen += [e["description"] for e in body["executions"]]
        url = body.get("next")
    assert seen == ["e", "d", "c", "b", "a"]


def test_sorting(api, five_executions):
    body = api.get("/v2/executions", sort_keys="description")[1]
    assert [e["description"] for e in body["executions"]] == ["a", "b", "c", "d", "e"]
    body = api.get("/v2/executions", sort_keys="state,description", sort_dirs="desc,asc")[1]
    assert [(e["state"], e["description"]) for e in body["executions"]] == [
        ("SUCCESS", "b"),
        ("SUCCESS", "e"),
        ("RUNNING", "a"),
        ("RUNNING", "c"),
        ("CANCELLED", "d"),
    ]
    assert api.get("/v2/executions", sort_keys="input")[0] == 400
    assert api.get("/v2/executions", sort_keys="description", sort_dirs="sideways")[0] == 400


def test_pagination_by_nullable_sort_key(api, five_executions):
    # updated_at of workflows is null until updated; the marker row may hold null.
    api.client.put("/v2/workflows", ECHO_WF.replace("greeting: hi", "greeting: yo"), content_type="text/plain")
    for dirs in ("asc", "desc"):
        seen, params = [], {"limit": 1, "sort_keys": "updated_at", "sort_dirs": dirs}
        while True:
            status, body = api.get("/v2/workflows", **params)
            assert status == 200, body
            seen += [w["name"] for w in body["workflows"]]
            if "next" not in body:
                break
            params["marker"] = body["workflows"][-1]["id"]
        assert sorted(seen) == ["cli_demo", "echo_wf"], dirs


def test_filters(api, five_executions):
    def ids(**params):
        status, body = api.get("/v2/executions", **params)
        assert status == 200, body
        return sorted(e["id"] for e in body["executions"])

    assert ids(state="RUNNING") == sorted(five_executions["RUNNING"])
    assert ids(state="eq:SUCCESS") == sorted(five_executions["SUCCESS"])
    assert ids(state="in:RUNNING,SUCCESS") == sorted(five_executions["RUNNING"] + five_executions["SUCCESS"])
    assert ids(state="nin:RUNNING,SUCCESS") == five_executions["CANCELLED"]
    assert ids(state="neq:RUNNING") == sorted(five_executions["SUCCESS"] + five_executions["CANCELLED"])
    assert ids(workflow_name="echo_wf", description="b") == [five_executions["SUCCESS"][1]]
    assert ids(task_execution_id="null") == ids()
    assert ids(created_at="gte:2000-01-01 00:00:00") == ids()
    assert ids(created_at="lt:2000-01-01 00:00:00") == []

    status, body = api.get("/v2/executions", colour="blue")
    assert status == 400 and "Unknown filter 'colour'" in body["faultstring"]
    status, body = api.get("/v2/executions", limit="many")
    assert status == 400 and "limit" in body["faultstring"]
    status, body = api.get("/v2/executions", marker=UNKNOWN)
    assert status == 404


def test_filter_values_that_do_not_fit_the_field_are_400(api, five_executions):
    status, body = api.get("/v2/action_executions", accepted="true")
    assert status == 200, body
    assert {a["accepted"] for a in body["action_executions"]} == {True}
    assert sorted(a["name"] for a in body["action_executions"]) == ["std.echo"] * 5  # one per execution
    status, body = api.get("/v2/action_executions", accepted="False")
    assert status == 200
    assert sorted(a["name"] for a in body["action_executions"]) == ["std.async_noop"] * 3
    status, body = api.get("/v2/action_executions", accepted="maybe")
    assert status == 400 and "accepted" in body["faultstring"]
    status, body = api.get("/v2/executions", created_at="gte:yesterday")
    assert status == 400, body
    assert "created_at" in body["faultstring"]


def test_list_fields(api, five_executions):
    body = api.get("/v2/executions", fields="state,description", limit=1)[1]
    assert set(body["executions"][0]) == {"id", "state", "description"}


def test_task_and_action_lists_filters(api, five_executions):
    ex_id = five_executions["RUNNING"][0]
    body = api.get("/v2/tasks", workflow_execution_id=ex_id, state="RUNNING")[1]
    assert [t["name"] for t in body["tasks"]] == ["wait_external"]
    body = api.get("/v2/tasks", workflow_name="echo_wf")[1]
    assert [t["name"] for t in body["tasks"]] == ["say", "say"]
    assert api.get("/v2/tasks", result="x")[0] == 400
    body = api.get("/v2/action_executions", state="RUNNING", name="std.async_noop")[1]
    assert len(body["action_executions"]) == 2


# --- actions ------------------------------------------------------------------


def test_action_list_and_get(api):
    status, body = api.get("/v2/actions")
    assert status == 200
    by_name = {a["name"]: a for a in body["actions"]}
    assert {"std.echo", "std.noop", "std.async_noop", "std.http", "std.mistral_http"} <= set(by_name)
    assert by_name["std.echo"]["input"] == "output, delay=0"
    status, echo = api.get("/v2/actions/std.echo")
    assert status == 200 and echo == by_name["std.echo"]


def test_root_answers_versions_to_json_clients_and_the_dashboard_to_browsers(client):
    body = client.get("/", HTTP_ACCEPT="application/json").json()
    assert body["versions"][0]["id"] == "v2.0"
    page = client.get("/", HTTP_ACCEPT="text/html")
    assert page["Content-Type"].startswith("text/html")
