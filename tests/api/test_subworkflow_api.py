"""Sub-workflows, with-items and reverse workflows over /v2, as the
mistral CLI sees them (resource fields of Mistral's API)."""

import json

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

WB = """
version: '2.0'
parent:
  tasks:
    each:
      with-items: x in [1, 2]
      workflow: child x=<% $.x %>
child:
  input: [x]
  output: {double: <% $.x * 2 %>}
  tasks:
    wait: {action: std.async_noop}
rev:
  type: reverse
  tasks:
    a: {action: std.echo output=a}
    b: {action: std.echo output=b, requires: [a]}
"""


def test_a_task_lists_its_sub_workflow_executions_and_they_name_parent_and_root(api):
    status, body = api.post_yaml("/v2/workflows", WB)
    assert status == 201, body
    ex = api.start("parent")
    status, tasks = api.get(f"/v2/executions/{ex['id']}/tasks")
    (task,) = tasks["tasks"]
    assert task["type"] == "WORKFLOW" and task["state"] == "RUNNING"
    status, body = api.get("/v2/executions", task_execution_id=task["id"])
    children = body["executions"]
    assert status == 200 and len(children) == 2
    assert {c["root_execution_id"] for c in children} == {ex["id"]}
    assert {c["task_execution_id"] for c in children} == {task["id"]}
    for child in children:
        status, actions = api.get("/v2/action_executions", workflow_execution_id=child["id"])
        (action,) = actions["action_executions"]
        status, _ = api.put(f"/v2/action_executions/{action['id']}", {"state": "SUCCESS", "output": "ok"})
        assert status == 200
    status, done = api.get(f"/v2/executions/{ex['id']}")
    assert done["state"] == "SUCCESS"
    status, task = api.get(f"/v2/tasks/{task['id']}")
    assert [r["double"] for r in json.loads(task["result"])] == [2, 4]


def test_a_reverse_workflow_starts_with_params_task_name_or_answers_400(api):
    status, body = api.post_yaml("/v2/workflows", WB)
    assert status == 201, body
    ex = api.start("rev", params='{"task_name": "b"}')
    status, body = api.get(f"/v2/executions/{ex['id']}")
    assert body["state"] == "SUCCESS"
    status, body = api.post("/v2/executions", {"workflow_name": "rev", "params": '{"task_name": "zz"}'})
    assert status == 400 and "Invalid task name [wf_spec=rev, task_name=zz]" in body["faultstring"]
