"""``mistral.workflow`` against a second Gust as the remote Mistral, both real
processes (web, worker, tracker) on throwaway databases of their own: the
local Gust's task starts a workflow on the remote's /v2 and learns how it
ended by polling GET /v2/executions/<id>, by the remote's params.notify
webhook (Gust sends Mistral's notifications), or both.

Neither instance touches the test database; on PostgreSQL both are
databases of DATABASE_URL's server (bench/gusts.py).
"""

import json
import os

import pytest

from bench.gusts import GustInstance, wait_for
from bench.remote import LOCAL_WORKFLOW, REMOTE_WORKFLOW


@pytest.fixture(scope="module")
def gusts():
    environ = dict(os.environ)
    environ.pop("GUST_BENCH_DB", None)
    local = GustInstance("local", environ)
    remote = GustInstance("remote", environ)
    try:
        local.start()
        remote.start()
        remote.upload(REMOTE_WORKFLOW)
        local.upload(LOCAL_WORKFLOW)
        yield local, remote
    except BaseException:
        print(local.logs(), remote.logs())  # shown by pytest when a test fails
        raise
    finally:
        local.stop()
        remote.stop()


def run(local, remote, wf, tracking, **inp):
    ex = local.start_execution("call", {"url": f"{remote.url}/v2", "wf": wf, "tracking": tracking, **inp})
    return local.wait_finished(ex["id"])


def remote_execution_of(local, remote, local_ex) -> dict:
    """The remote execution the local action started (its description names the action)."""
    (action,) = local.action_executions(local_ex["id"])
    listed = remote.v2("GET", "/executions", expect=200)["executions"]
    (found,) = [e for e in listed if action["id"] in e["description"]]
    return remote.execution(found["id"])


@pytest.mark.parametrize("tracking", ["poll", "callback", "hybrid"])
def test_the_remote_output_becomes_the_task_result(gusts, tracking):
    local, remote = gusts
    ex = run(local, remote, "remote_quick", tracking, x=21)
    assert ex["state"] == "SUCCESS", ex["state_info"]
    assert ex["output"] == '{"result": {"doubled": 42}}'
    (action,) = local.action_executions(ex["id"])
    assert action["state"] == "SUCCESS"
    remote_ex = remote_execution_of(local, remote, ex)
    assert remote_ex["state"] == "SUCCESS"
    notify = json.loads(remote_ex["params"]).get("notify")
    if tracking == "poll":
        assert notify is None  # nothing but GET /v2/executions/<id> told the local Gust
    else:
        # hybrid waits 60 s (grace) before polling: the notification came back first
        (hook,) = notify
        assert hook["type"] == "webhook" and hook["url"].startswith(f"{local.url}/api/callbacks/")
        assert hook["event_types"] == ["WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"]


@pytest.mark.parametrize("tracking", ["poll", "callback"])
def test_a_remote_failure_fails_the_task_with_its_state_info(gusts, tracking):
    local, remote = gusts
    ex = run(local, remote, "remote_fail", tracking)
    assert ex["state"] == "ERROR"
    remote_ex = remote_execution_of(local, remote, ex)
    assert remote_ex["state"] == "ERROR" and "boom from the remote" in remote_ex["state_info"]
    (task,) = local.v2("GET", f"/executions/{ex['id']}/tasks", expect=200)["tasks"]
    assert task["state"] == "ERROR"
    assert f"Remote workflow execution {remote_ex['id']} failed: " in task["state_info"]
    assert "boom from the remote" in task["state_info"]


@pytest.mark.parametrize("tracking", ["poll", "callback"])
def test_cancelling_the_local_workflow_cancels_the_remote_execution(gusts, tracking):
    local, remote = gusts
    ex = local.start_execution("call", {"url": f"{remote.url}/v2", "wf": "remote_wait", "tracking": tracking})
    remote_ex = wait_for(lambda: _started_remotely(local, remote, ex), 60, "the remote execution to start")
    assert remote_ex["state"] == "RUNNING"
    local.v2("PUT", f"/executions/{ex['id']}", expect=200, json={"state": "CANCELLED"})
    assert local.wait_finished(ex["id"])["state"] == "CANCELLED"
    ended = remote.wait_finished(remote_ex["id"])
    assert ended["state"] == "CANCELLED"
    assert "ended CANCELLED" in ended["state_info"]
    (action,) = local.action_executions(ex["id"])
    assert action["state"] == "CANCELLED"  # the remote's WORKFLOW_CANCELLED notification changed nothing


def _started_remotely(local, remote, ex):
    try:
        return remote_execution_of(local, remote, ex)
    except ValueError:  # not listed yet
        return None


def test_an_unknown_remote_workflow_fails_the_task_with_the_remote_answer(gusts):
    local, remote = gusts
    ex = run(local, remote, "no_such_workflow", "poll")
    assert ex["state"] == "ERROR"
    (task,) = local.v2("GET", f"/executions/{ex['id']}/tasks", expect=200)["tasks"]
    assert (
        f"Remote Mistral at {remote.url}/v2/executions refused to start workflow 'no_such_workflow': "
        "HTTP 404" in task["state_info"]
    )


def test_an_unreachable_remote_fails_the_task_saying_so(gusts):
    from bench.procs import free_port

    local, _ = gusts
    url = f"http://127.0.0.1:{free_port()}/v2"
    ex = local.start_execution("call", {"url": url, "wf": "remote_quick", "tracking": "callback"})
    ex = local.wait_finished(ex["id"])
    assert ex["state"] == "ERROR"
    (task,) = local.v2("GET", f"/executions/{ex['id']}/tasks", expect=200)["tasks"]
    assert f"Remote Mistral at {url}/executions is unreachable (start workflow 'remote_quick')" in task["state_info"]
