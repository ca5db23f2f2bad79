"""The real ``mistral`` command for environments, cron triggers and
run-action against a live Gust (python-mistralclient 6.3)."""

from __future__ import annotations

import json

import pytest

from tests.api.test_environments import FAILING_WF, PAUSING_WF
from workflows.models import ActionExecution, Environment, TaskExecution, WorkflowExecution

pytestmark = [pytest.mark.cli, pytest.mark.django_db(transaction=True)]


def test_environment_commands_and_env_on_start_resume_and_rerun(mistral):
    path = mistral.file(
        "env.yaml",
        "name: people\ndescription: who is who\nvariables:\n  who: alice\n  greeting: hello <% env().who %>\n",
    )
    created = mistral.json("environment-create", path)
    assert created["Name"] == "people" and created["Scope"] == "private"
    assert json.loads(created["Variables"]) == {"who": "alice", "greeting": "hello <% env().who %>"}
    assert [e["Name"] for e in mistral.json("environment-list")] == ["people"]
    assert mistral.json("environment-get", "people")["Description"] == "who is who"

    path = mistral.file("env2.json", json.dumps({"name": "people", "variables": {"who": "bob"}}))
    updated = mistral.json("environment-update", path)
    assert json.loads(updated["Variables"]) == {"who": "bob"}
    assert Environment.objects.get(name="people").variables == {"who": "bob"}

    # A name as params.env, then a new env on resume.
    mistral("workflow-create", mistral.file("pausing.yaml", PAUSING_WF))
    ex = mistral.json("execution-create", "pausing", "{}", json.dumps({"env": "people"}))
    assert ex["State"] == "PAUSED"
    mistral("execution-update", ex["ID"], "-s", "RUNNING", "--env", json.dumps({"who": "carol"}))
    done = WorkflowExecution.objects.get(id=ex["ID"])
    assert done.state == "SUCCESS" and done.output == {"who": "carol"}

    # A new env on task rerun.
    mistral("workflow-create", mistral.file("failing.yaml", FAILING_WF))
    ex = mistral.json("execution-create", "failing", "{}", json.dumps({"env": {"divisor": 0}}))
    assert ex["State"] == "ERROR"
    task = TaskExecution.objects.get(workflow_execution_id=ex["ID"])
    mistral("task-rerun", task.id, "--env", json.dumps({"divisor": 5}))
    done = WorkflowExecution.objects.get(id=ex["ID"])
    assert done.state == "SUCCESS" and done.output == {"got": 2}

    mistral("environment-delete", "people")
    assert not Environment.objects.exists()
    failed = mistral("environment-get", "people", fail=True)
    assert "Environment not found [name=people]" in failed.stderr
    failed = mistral("execution-create", "pausing", "{}", json.dumps({"env": "people"}), fail=True)
    assert "Environment is not found: people" in failed.stderr


def test_run_action_commands(mistral):
    """mistral run-action: without flags it prints the output; -s shows the
    stored action execution; --run-sync of an async action is refused."""
    out = mistral("run-action", "std.echo", json.dumps({"output": "Hi"}))
    assert json.loads(out.stdout) == {"result": "Hi"}
    assert not ActionExecution.objects.exists()

    shown = mistral.json("run-action", "std.async_noop", "-s")
    assert shown["State"] == "RUNNING" and shown["Name"] == "std.async_noop"
    mistral("action-execution-update", shown["ID"], "--state", "SUCCESS", "--output", json.dumps({"done": 1}))
    assert ActionExecution.objects.get(id=shown["ID"]).output == {"result": {"done": 1}}

    out = mistral("run-action", "std.echo", json.dumps({"output": 3}), "--run-sync", "-s", "-t", "any")
    assert json.loads(out.stdout) == {"result": 3}
    assert ActionExecution.objects.filter(name="std.echo", state="SUCCESS").count() == 1

    failed = mistral("run-action", "std.async_noop", "--run-sync", fail=True)
    assert "Action does not support synchronous execution." in failed.stderr
    failed = mistral("run-action", "std.echo", json.dumps({"outptu": 1}), fail=True)
    assert "std.echo" in failed.stderr


def test_cron_trigger_commands(mistral):
    mistral(
        "workflow-create",
        mistral.file(
            "wf.yaml",
            "version: '2.0'\ncron_wf:\n  input:\n    - who\n  tasks:\n    t: {action: std.echo output=<% $.who %>}\n",
        ),
    )
    created = mistral.json(
        "cron-trigger-create",
        "every5",
        "cron_wf",
        json.dumps({"who": "cron"}),
        "--pattern",
        "*/5 * * * *",
        "--count",
        "3",
    )
    assert created["Name"] == "every5" and created["Workflow"] == "cron_wf" and created["Pattern"] == "*/5 * * * *"
    assert created["Remaining executions"] == 3 and created["Next execution time"]
    once = mistral.json(
        "cron-trigger-create", "once", "cron_wf", json.dumps({"who": "x"}), "--first-time", "4242-12-25 13:37", "--utc"
    )
    assert once["Next execution time"] == "4242-12-25 13:37:00" and once["Remaining executions"] == 1
    assert sorted(t["Name"] for t in mistral.json("cron-trigger-list")) == ["every5", "once"]
    assert mistral.json("cron-trigger-get", "every5")["Pattern"] == "*/5 * * * *"
    mistral("cron-trigger-delete", "every5")
    failed = mistral("cron-trigger-get", "every5", fail=True)
    assert "Cron trigger not found [identifier=every5]" in failed.stderr
    failed = mistral("cron-trigger-create", "bad", "cron_wf", json.dumps({"who": "x"}), "--pattern", "nope", fail=True)
    assert "The specified pattern is not valid: nope" in failed.stderr
