"""Environments: /v2/environments as Mistral's EnvironmentController
(mistral/tests/unit/api/v2/test_environment.py), and ``params.env`` of an
execution as Mistral's engine (mistral/tests/unit/engine/test_environment.py,
mistral/engine/workflows.py ``_get_environment``)."""

from __future__ import annotations

import json

import pytest

from workflows.models import Environment, WorkflowExecution

pytestmark = pytest.mark.django_db

VARIABLES = {
    "host": "localhost",
    "db": "test",
    "timeout": 600,
    "verbose": True,
    "__actions": {"std.sql": {"conn": "mysql://admin:secret@<% env().host %>/<% env().db %>"}},
}

ENV_WF = """\
version: '2.0'
env_wf:
  output:
    host: <% $.host %>
    conn: <% $.conn %>
  tasks:
    t1:
      action: std.echo output=<% env().host %>
      publish:
        host: <% task().result %>
        conn: <% env().get('__actions').get('std.sql').conn %>
"""

PAUSING_WF = """\
version: '2.0'
pausing:
  output:
    who: <% $.who %>
  tasks:
    t1:
      action: std.noop
      on-success:
        - pause
        - t2
    t2:
      action: std.echo output=<% env().who %>
      publish:
        who: <% task().result %>
"""

FAILING_WF = """\
version: '2.0'
failing:
  output:
    got: <% $.got %>
  tasks:
    t1:
      action: std.echo output=<% 10 / env().divisor %>
      publish:
        got: <% task().result %>
"""


def create_env(api, name="test", variables=None, **extra):
    body = {"name": name, "description": "my test settings", "variables": json.dumps(variables or VARIABLES), **extra}
    status, env = api.post("/v2/environments", body)
    assert status == 201, env
    return env


def test_create_get_list_update_delete_as_mistral(api):
    env = create_env(api)
    assert env["name"] == "test" and env["scope"] == "private" and env["project_id"] == "<default-project>"
    assert json.loads(env["variables"]) == VARIABLES  # JSON-encoded, as Mistral's jsontype
    assert env["created_at"] and env["updated_at"] is None

    status, got = api.get("/v2/environments/test")
    assert status == 200
    assert {**got, "variables": json.loads(got["variables"])} == {
        **env,
        "variables": VARIABLES,
    }  # PostgreSQL: key order
    status, listed = api.get("/v2/environments")
    assert [e["name"] for e in listed["environments"]] == ["test"]

    changed = {**VARIABLES, "host": "127.0.0.1"}
    status, updated = api.put("/v2/environments", {"name": "test", "variables": json.dumps(changed)})
    assert status == 200, updated
    assert json.loads(updated["variables"]) == changed
    assert updated["description"] == "my test settings"  # a field not sent is kept
    assert updated["updated_at"]

    assert api.delete("/v2/environments/test")[0] == 204
    assert api.get("/v2/environments/test") == (404, {"faultstring": "Environment not found [name=test]"})
    assert not Environment.objects.exists()


def test_variables_sent_as_an_object_are_accepted_too(api):
    status, env = api.post("/v2/environments", {"name": "plain", "variables": {"a": 1}})
    assert status == 201 and json.loads(env["variables"]) == {"a": 1}


def test_bad_environment_bodies_are_refused_and_store_nothing(api):
    """test_post_with_illegal_field, test_post_dup, test_put_not_found,
    test_delete_not_found of Mistral's API tests, plus Gust's bounds."""
    status, body = api.post("/v2/environments", {"name": "x", "variables": "{}", "extra_field": 1})
    assert status == 400
    assert body["faultstring"] == (
        "Please, check your environment definition. Only: "
        "['name', 'description', 'variables', 'scope'] are allowed as definition keys."
    )
    status, body = api.post("/v2/environments", {"name": "x", "variables": "[1, 2]"})
    assert status == 400 and "variables" in body["faultstring"] and "must be a dictionary" in body["faultstring"]
    status, body = api.post("/v2/environments", {"name": "x", "variables": "{not json"})
    assert status == 400 and "variables" in body["faultstring"]
    status, body = api.post("/v2/environments", {"name": "x", "scope": "world"})
    assert status == 400 and "scope" in body["faultstring"]
    status, body = api.post("/v2/environments", {"variables": "{}"})
    assert (status, body["faultstring"]) == (400, "Name of the environment is not provided.")
    status, body = api.post("/v2/environments", {"name": "n" * 201})
    assert status == 400
    assert not Environment.objects.exists()

    create_env(api)
    status, body = api.post("/v2/environments", {"name": "test", "variables": "{}"})
    assert status == 409 and "Duplicate entry for Environment" in body["faultstring"]
    status, body = api.put("/v2/environments", {"name": "nope", "variables": "{}"})
    assert (status, body["faultstring"]) == (404, "Environment not found [name=nope]")
    status, body = api.put("/v2/environments", {"name": "test", "variables": "[1]"})
    assert status == 400
    assert Environment.objects.get(name="test").variables == VARIABLES
    assert api.delete("/v2/environments/nope")[0] == 404


def test_too_large_variables_are_refused(api, settings):
    settings.GUST = {**settings.GUST, "EXECUTION_FIELD_SIZE_LIMIT_KB": 1}
    status, body = api.post("/v2/environments", {"name": "big", "variables": {"x": "y" * 2000}})
    assert status == 400 and "variables" in body["faultstring"]
    assert not Environment.objects.exists()


def test_an_execution_started_with_a_named_environment_sees_it_evaluated(api):
    """Mistral evaluates the expressions inside the env once at start, with
    env() reading the unevaluated env (test_environment.py, _get_environment)."""
    create_env(api)
    api.create_workflow(ENV_WF)
    ex = api.start("env_wf", params=json.dumps({"env": "test"}))
    assert ex["state"] == "SUCCESS", ex
    assert json.loads(ex["output"]) == {"host": "localhost", "conn": "mysql://admin:secret@localhost/test"}
    params = json.loads(ex["params"])
    assert params["env"]["__actions"]["std.sql"]["conn"] == "mysql://admin:secret@localhost/test"


def test_evaluate_env_false_keeps_the_expressions_as_text(api):
    """test_evaluate_env_parameter."""
    api.create_workflow(
        "version: '2.0'\nwf:\n  output:\n    v2: <% $.var2 %>\n  tasks:\n    t1:\n"
        "      action: std.noop\n      publish:\n        var2: <% env().var2 %>\n"
    )
    env = {"var1": "val1", "var2": "<% env().var1 %>"}
    evaluated = api.start("wf", params={"env": env, "evaluate_env": True})
    kept = api.start("wf", params={"env": env, "evaluate_env": False})
    assert json.loads(evaluated["output"]) == {"v2": "val1"}
    assert json.loads(kept["output"]) == {"v2": "<% env().var1 %>"}


def test_a_deleted_or_changed_environment_does_not_touch_running_executions(api):
    api.create_workflow(PAUSING_WF)
    create_env(api, "people", {"who": "alice"})
    ex = api.start("pausing", params={"env": "people"})
    assert ex["state"] == "PAUSED"
    api.put("/v2/environments", {"name": "people", "variables": {"who": "bob"}})
    assert api.delete("/v2/environments/people")[0] == 204
    status, resumed = api.put(f"/v2/executions/{ex['id']}", {"state": "RUNNING"})
    assert status == 200 and resumed["state"] == "SUCCESS"
    assert json.loads(resumed["output"]) == {"who": "alice"}


def test_unknown_environment_or_one_that_is_not_a_mapping_is_refused_and_nothing_is_created(api):
    api.create_workflow(ENV_WF)
    status, body = api.post("/v2/executions", {"workflow_name": "env_wf", "params": {"env": "nope"}})
    assert (status, body["faultstring"]) == (400, "Environment is not found: nope")
    status, body = api.post("/v2/executions", {"workflow_name": "env_wf", "params": {"env": [1, 2]}})
    assert status == 400 and body["faultstring"].startswith("params.env: Unexpected value type for environment")
    status, body = api.post("/v2/executions", {"workflow_name": "env_wf", "params": {"env": {"x": "<% 1 + %>"}}})
    assert status == 400 and body["faultstring"].startswith("params.env: ")
    assert not WorkflowExecution.objects.exists()


def test_a_new_env_on_resume_is_merged_into_the_executions_env(api):
    """Mistral's resume(env): update_workflow_execution_env merges it (the
    CLI's execution-update -s RUNNING --env sends params.env)."""
    api.create_workflow(PAUSING_WF)
    ex = api.start("pausing", params={"env": {"who": "alice", "keep": {"a": 1, "b": 2}}})
    status, resumed = api.put(
        f"/v2/executions/{ex['id']}", {"state": "RUNNING", "params": {"env": {"who": "carol", "keep": {"b": 3}}}}
    )
    assert status == 200 and resumed["state"] == "SUCCESS", resumed
    assert json.loads(resumed["output"]) == {"who": "carol"}
    assert json.loads(resumed["params"])["env"] == {"who": "carol", "keep": {"a": 1, "b": 3}}


def test_env_rules_on_execution_update(api):
    """mistral/api/controllers/v2/execution.py put and
    services/workflows.py update_workflow_execution_env."""
    api.create_workflow(PAUSING_WF)
    ex = api.start("pausing", params={"env": {"who": "alice"}})
    status, body = api.put(f"/v2/executions/{ex['id']}", {"state": "CANCELLED", "params": {"env": {"who": "x"}}})
    assert status == 400 and body["faultstring"].startswith("The property env can only be updated")
    status, body = api.put(f"/v2/executions/{ex['id']}", {"params": {"env": {"who": "dave"}}})
    assert status == 200, body  # PAUSED: env alone may change
    assert json.loads(body["params"])["env"] == {"who": "dave"}
    status, body = api.put(f"/v2/executions/{ex['id']}", {"params": {"env": "[1]"}})
    assert status == 400
    status, body = api.put(f"/v2/executions/{ex['id']}", {"params": {}})
    assert (status, body["faultstring"]) == (400, "The property state, description, or env is not provided for update.")
    api.put(f"/v2/executions/{ex['id']}", {"state": "RUNNING"})
    status, body = api.put(f"/v2/executions/{ex['id']}", {"params": {"env": {"who": "late"}}})
    assert status == 403 and "IDLE, PAUSED, or ERROR" in body["faultstring"]
    assert WorkflowExecution.objects.get(id=ex["id"]).params["env"] == {"who": "dave"}


def test_a_new_env_on_task_rerun_is_used_by_the_rerun(api):
    """Mistral's rerun(env) (task-rerun --env sends ``env`` JSON-encoded)."""
    api.create_workflow(FAILING_WF)
    ex = api.start("failing", params={"env": {"divisor": 0, "other": 1}})
    assert ex["state"] == "ERROR"
    status, tasks = api.get(f"/v2/executions/{ex['id']}/tasks")
    t1 = tasks["tasks"][0]
    status, body = api.put(
        f"/v2/tasks/{t1['id']}", {"state": "RUNNING", "reset": True, "env": json.dumps({"divisor": 2})}
    )
    assert status == 200, body
    done = WorkflowExecution.objects.get(id=ex["id"])
    assert done.state == "SUCCESS", done.state_info
    assert done.output == {"got": 5}
    assert done.params["env"] == {"divisor": 2, "other": 1}


def test_a_refused_rerun_leaves_the_env_as_it_was(api):
    api.create_workflow(FAILING_WF)
    ex = api.start("failing", params={"env": {"divisor": 0}})
    status, tasks = api.get(f"/v2/executions/{ex['id']}/tasks")
    status, body = api.put(f"/v2/tasks/{tasks['tasks'][0]['id']}", {"state": "PAUSED", "env": {"divisor": 2}})
    assert status == 400
    assert WorkflowExecution.objects.get(id=ex["id"]).params["env"] == {"divisor": 0}
