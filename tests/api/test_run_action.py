"""run-action: ``POST /v2/action_executions`` runs one action outside any
workflow, as Mistral 23's DefaultEngine.start_action
(mistral/engine/default_engine.py) and mistral/tests/unit/engine/test_run_action.py."""

from __future__ import annotations

import json

import pytest

from workflows.models import ActionExecution

pytestmark = pytest.mark.django_db


def run(api, name, action_input=None, **params):
    body = {"name": name}
    if action_input is not None:
        body["input"] = json.dumps(action_input)  # as python-mistralclient sends it
    if params:
        body["params"] = json.dumps(params)
    return api.post("/v2/action_executions", body)


def test_a_sync_action_without_flags_runs_now_and_is_not_stored(api):
    """test_run_action_sync: the answer holds the output; nothing is saved."""
    status, ex = run(api, "std.echo", {"output": "Hello!"})
    assert status == 201, ex
    assert ex["state"] == "SUCCESS" and json.loads(ex["output"]) == {"result": "Hello!"}
    assert ex["id"] is None and ex["task_execution_id"] is None
    assert not ActionExecution.objects.exists()


def test_run_sync_with_save_result_stores_the_finished_action(api):
    """test_run_action_save_result_and_run_sync."""
    status, ex = run(api, "std.echo", {"output": "Hello!"}, run_sync=True, save_result=True)
    assert status == 201 and ex["state"] == "SUCCESS"
    row = ActionExecution.objects.get(id=ex["id"])
    assert row.output == {"result": "Hello!"} and row.state == "SUCCESS" and row.task_execution_id is None


def test_save_result_stores_an_engine_local_action_finished(api):
    """test_run_action_save_result: Mistral answers RUNNING and the action
    then succeeds; an engine-local action is finished before Gust answers."""
    status, ex = run(api, "std.echo", {"output": "Hello!"}, save_result=True)
    assert status == 201
    assert ActionExecution.objects.get(id=ex["id"]).output == {"result": "Hello!"}


def test_a_failing_action_ends_in_error_with_its_message(api):
    """test_run_action_error."""
    status, ex = run(api, "std.fail", {"error_data": "some error"})
    assert status == 201 and ex["state"] == "ERROR"
    assert json.loads(ex["output"]) == {"result": "some error"}


def test_an_async_action_stays_running_until_completed_through_the_api(api):
    """test_run_action_async, completed as Mistral's async actions are."""
    status, ex = run(api, "std.async_noop")
    assert status == 201 and ex["state"] == "RUNNING" and ex["id"]
    status, done = api.put(f"/v2/action_executions/{ex['id']}", {"state": "SUCCESS", "output": {"x": 1}})
    assert status == 200 and done["state"] == "SUCCESS"
    assert ActionExecution.objects.get(id=ex["id"]).output == {"result": {"x": 1}}
    # The same result again is a no-op; another one is a conflict.
    assert api.put(f"/v2/action_executions/{ex['id']}", {"state": "SUCCESS", "output": {"x": 1}})[0] == 200
    assert api.put(f"/v2/action_executions/{ex['id']}", {"state": "ERROR", "output": "no"})[0] == 409


def test_run_sync_of_an_async_action_is_refused(api):
    """test_run_action_run_sync_error."""
    status, body = run(api, "std.async_noop", run_sync=True)
    assert (status, body["faultstring"]) == (400, "Action does not support synchronous execution.")
    assert not ActionExecution.objects.exists()


def test_a_worker_action_with_save_result_waits_for_a_worker(api, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("workflows.queue.run_actions", lambda ids: queued.extend(ids))
    with django_capture_on_commit_callbacks(execute=True):
        status, ex = run(api, "std.sleep", {"seconds": 0}, save_result=True)
    assert status == 201 and ex["state"] == "RUNNING"
    assert queued == [ex["id"]]
    from workflows import dispatch

    dispatch.run_action(ex["id"])  # what the worker does with the job
    row = ActionExecution.objects.get(id=ex["id"])
    assert row.state == "SUCCESS" and row.output == {"result": None}


def test_a_sync_run_of_a_worker_action_waits_for_its_result(api, outside_service):
    status, ex = run(api, "std.http", {"url": f"{outside_service.url}/ping"}, run_sync=True)
    assert status == 201 and ex["state"] == "SUCCESS", ex
    assert json.loads(ex["output"])["result"]["content"] == {"ok": True, "path": "/ping"}
    assert len(outside_service.requests) == 1


def test_bad_input_is_refused_with_mistrals_message_and_nothing_is_stored(api):
    """test_run_action_wrong_input: the message names the action."""
    status, body = run(api, "std.http", {"url": "Hello, ", "metod": "John Doe!"})
    assert status == 400 and "std.http" in body["faultstring"] and "metod" in body["faultstring"]
    status, body = run(api, "std.echo", {})
    assert status == 400 and "missing required parameter 'output'" in body["faultstring"]
    status, body = run(api, "no.such")
    assert (status, body["faultstring"]) == (400, "Failed to find action [action_name=no.such, namespace=]")
    status, body = api.post("/v2/action_executions", {"name": "std.echo", "input": "[1]"})
    assert status == 400 and "input" in body["faultstring"]
    status, body = api.post("/v2/action_executions", {"input": "{}"})
    assert (status, body["faultstring"]) == (400, "Please provide at least action name to run action.")
    assert not ActionExecution.objects.exists()


ADHOC = """---
version: '2.0'
greet:
  base: std.echo
  base-input:
    output: "Hello, <% $.name %>!"
  input:
    - name: world
  output: <% $.toUpper() %>
wait_for:
  base: std.async_noop
  input: [what]
  output: "got <% $ %>"
"""


def test_run_action_runs_an_adhoc_action_through_its_base_and_output(api):
    """test_run_action_with_adhoc_action (Mistral's test_run_action.py): the
    base runs with base-input, output transforms its result; the execution
    shows the ad-hoc name and its input with defaults."""
    status, body = api.post_yaml("/v2/actions", ADHOC)
    assert status == 201, body
    status, ex = run(api, "greet", {"name": "Gust"})
    assert status == 201, ex
    assert ex["name"] == "greet" and json.loads(ex["output"]) == {"result": "HELLO, GUST!"}
    status, ex = run(api, "greet", save_result=True)
    row = ActionExecution.objects.get(id=ex["id"])
    assert row.input == {"name": "world"} and row.output == {"result": "HELLO, WORLD!"}
    status, ex = run(api, "wait_for", {"what": "x"})
    assert status == 201 and ex["state"] == "RUNNING"
    status, done = api.put(f"/v2/action_executions/{ex['id']}", {"state": "SUCCESS", "output": "it"})
    assert status == 200, done
    assert ActionExecution.objects.get(id=ex["id"]).output == {"result": "got it"}
    status, body = run(api, "greet", {"nam": "typo"})
    assert status == 400 and "Invalid input" in body["faultstring"]
