"""PUT /v2/tasks/<id>: rerun (``mistral task-rerun``) and skip, as Mistral's API."""

import pytest

pytestmark = pytest.mark.django_db

FAILING = """
version: '2.0'
flaky:
  tasks:
    t:
      action: std.fail
      publish-on-skip: {skipped: true}
      on-skip: [after]
    after: {}
"""


def failed_task(api):
    api.create_workflow(FAILING)
    ex = api.start("flaky")
    _, body = api.get(f"/v2/executions/{ex['id']}/tasks")
    [task] = body["tasks"]
    assert task["state"] == "ERROR"
    return ex, task


def test_skipping_a_failed_task_follows_its_on_skip_and_the_workflow_succeeds(api):
    ex, task = failed_task(api)
    status, body = api.put(f"/v2/tasks/{task['id']}", {"state": "SKIPPED"})
    assert status == 200 and body["state"] == "SKIPPED"
    _, execution = api.get(f"/v2/executions/{ex['id']}")
    assert execution["state"] == "SUCCESS"


def test_rerunning_a_failed_task_runs_a_new_action_execution(api):
    ex, task = failed_task(api)
    status, body = api.put(f"/v2/tasks/{task['id']}", {"state": "RUNNING", "reset": True})
    assert status == 200 and body["state"] == "ERROR"  # std.fail fails again
    _, actions = api.get(f"/v2/tasks/{task['id']}/action_executions")
    assert len(actions["action_executions"]) == 2


@pytest.mark.parametrize(
    "body,message",
    [
        ({"state": "SUCCESS"}, "Invalid task state. Only updating task to rerun or skip is supported."),
        ({"state": "RUNNING", "reset": False}, "Only with-items task has the option to not reset."),
        ({"state": "SKIPPED", "name": "other"}, "Task name does not match."),
    ],
)
def test_other_updates_are_refused_and_change_nothing(api, body, message):
    ex, task = failed_task(api)
    status, answer = api.put(f"/v2/tasks/{task['id']}", body)
    assert status == 400 and message in answer["faultstring"]
    _, again = api.get(f"/v2/tasks/{task['id']}")
    assert again["state"] == "ERROR"


def test_a_result_put_while_paused_is_stored_and_the_next_task_starts_only_at_resume(api):
    api.create_workflow("""
version: '2.0'
waits:
  tasks:
    w:
      action: std.async_noop
      on-success: [after]
    after: {}
""")
    ex = api.start("waits")
    _, body = api.get(f"/v2/executions/{ex['id']}/tasks")
    _, actions = api.get(f"/v2/tasks/{body['tasks'][0]['id']}/action_executions")
    action_id = actions["action_executions"][0]["id"]
    assert api.put(f"/v2/executions/{ex['id']}", {"state": "PAUSED"})[0] == 200
    status, done = api.put(f"/v2/action_executions/{action_id}", {"state": "SUCCESS", "output": {"x": 1}})
    assert status == 200 and done["state"] == "SUCCESS"
    _, tasks = api.get(f"/v2/executions/{ex['id']}/tasks")
    assert [t["name"] for t in tasks["tasks"]] == ["w"]  # nothing follows while paused
    assert api.put(f"/v2/executions/{ex['id']}", {"state": "RUNNING"})[0] == 200
    _, execution = api.get(f"/v2/executions/{ex['id']}")
    assert execution["state"] == "SUCCESS"
