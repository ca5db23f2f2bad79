"""The real ``mistral`` command (python-mistralclient) against a live Gust.

Each scenario replays part of shared/mistral-reference/cli-transcript.md and
checks that Gust answers what the client needs. Every CLI call costs about
half a second, so the scenarios are few and long; lookups that are not
themselves under test go through the ORM.
"""

from __future__ import annotations

import json

import pytest

from tracker.models import Completion
from workflows.models import ActionExecution, TaskExecution, WorkflowDefinition, WorkflowExecution

pytestmark = [pytest.mark.cli, pytest.mark.django_db(transaction=True)]

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def test_workflow_commands(mistral, cli_demo_yaml, cli_bad_yaml):
    demo = mistral.file("cli_demo.yaml", cli_demo_yaml)
    bad = mistral.file("cli_bad.yaml", cli_bad_yaml)

    valid = mistral.json("workflow-validate", demo)
    assert valid == {"Valid": True, "Error": None}
    invalid = mistral.json("workflow-validate", bad)
    assert invalid["Valid"] is False
    assert "Parse error: unexpected end of statement" in invalid["Error"]
    assert "cli_bad.tasks.t1" in invalid["Error"]  # Gust adds where the error is
    assert not WorkflowDefinition.objects.exists()

    created = mistral.json("workflow-create", demo)
    assert [(w["Name"], w["Input"], w["Namespace"], w["Scope"]) for w in created] == [
        ("cli_demo", 'name="world"', "", "private")
    ]
    wf_id = created[0]["ID"]

    again = mistral("workflow-create", demo, fail=True)
    assert again.returncode == 1
    assert "Duplicate entry for WorkflowDefinition ['name', 'namespace', 'project_id']: cli_demo" in again.stderr
    assert WorkflowDefinition.objects.count() == 1

    listed = mistral.json("workflow-list")
    assert [(w["ID"], w["Name"], w["Input"]) for w in listed] == [(wf_id, "cli_demo", 'name="world"')]

    shown = mistral.json("workflow-get", "cli_demo")
    assert shown["ID"] == wf_id and shown["Name"] == "cli_demo" and shown["Tags"] == "<none>"
    assert shown["Updated at"] is None
    assert mistral.value("workflow-get", wf_id, "-c", "Name") == "cli_demo"  # by id too

    definition = mistral("workflow-get-definition", "cli_demo").stdout
    assert definition.strip() == cli_demo_yaml.strip()

    missing = mistral("workflow-get", "no_such_wf", fail=True)
    assert "Workflow not found [workflow_identifier=no_such_wf, namespace=]" in missing.stderr

    deleted = mistral("workflow-delete", "cli_demo")
    assert "Request to delete workflow cli_demo has been accepted." in deleted.stdout
    # (an empty list comes back from the client as one row of empty strings)
    assert [w["Name"] for w in mistral.json("workflow-list") if w["Name"]] == []
    gone = mistral("workflow-delete", "cli_demo", fail=True)
    assert "Workflow not found" in gone.stderr + gone.stdout


def test_execution_completed_through_action_execution_update(mistral, cli_demo_yaml):
    mistral("workflow-create", mistral.file("cli_demo.yaml", cli_demo_yaml))

    ex = mistral.json("execution-create", "cli_demo", '{"name": "mistral"}')
    assert ex["Workflow name"] == "cli_demo" and ex["State"] == "RUNNING"
    ex_id = ex["ID"]
    assert WorkflowExecution.objects.get(id=ex_id).input == {"name": "mistral"}

    listed = mistral.json("execution-list")
    assert [(e["ID"], e["State"]) for e in listed] == [(ex_id, "RUNNING")]
    shown = mistral.json("execution-get", ex_id)
    assert shown["State"] == "RUNNING" and shown["Task Execution ID"] == "<none>"

    listed_tasks = mistral.json("task-list", ex_id)
    # in creation order, as in the transcript (they share created_at; Gust orders ties by seq)
    assert [(t["Name"], t["State"], t["State info"]) for t in listed_tasks] == [
        ("say_hello", "SUCCESS", None),
        ("wait_external", "RUNNING", None),
        ("join_both", "WAITING", "Task is waiting."),
    ]
    tasks = {t["Name"]: t for t in listed_tasks}
    assert all(t["Workflow Execution ID"] == ex_id for t in tasks.values())
    hello_id, wait_id = tasks["say_hello"]["ID"], tasks["wait_external"]["ID"]

    task = mistral.json("task-get", wait_id)
    assert (task["Name"], task["State"], task["Finished at"]) == ("wait_external", "RUNNING", "<none>")
    assert json.loads(mistral("task-get-result", hello_id).stdout) == "hello mistral"
    assert json.loads(mistral("task-get-result", wait_id).stdout) == []

    actions = {a["Name"]: a for a in mistral.json("action-execution-list")}
    assert {n: (a["State"], a["Accepted"]) for n, a in actions.items()} == {
        "std.echo": ("SUCCESS", True),
        "std.async_noop": ("RUNNING", False),
    }
    of_task = mistral.json("action-execution-list", wait_id)
    assert [(a["Name"], a["Task ID"]) for a in of_task] == [("std.async_noop", wait_id)]
    action_id = of_task[0]["ID"]

    action = mistral.json("action-execution-get", action_id)
    assert (action["State"], action["Accepted"], action["Task ID"]) == ("RUNNING", False, wait_id)

    done = mistral.json("action-execution-update", action_id, "--state", "SUCCESS", "--output", '{"value": 3}')
    assert (done["ID"], done["State"], done["Accepted"]) == (action_id, "SUCCESS", True)
    # The CLI is the REST API's door to the live latency figures, by hand for std.async_noop.
    assert Completion.objects.filter(action_id=action_id).values_list("mode", "door").get() == ("by hand", "api")

    assert mistral.value("execution-get", ex_id, "-c", "State") == "SUCCESS"
    assert json.loads(mistral("execution-get-output", ex_id).stdout) == {
        "echoed": "hello mistral",
        "async_result": {"value": 3},
        "joined": "joined",
    }
    assert json.loads(mistral("task-get-result", wait_id).stdout) == {"value": 3}
    assert json.loads(mistral("action-execution-get-output", action_id).stdout) == {"result": {"value": 3}}

    # A different result for a completed action: Gust answers 409, the CLI exits 1.
    clash = mistral("action-execution-update", action_id, "--state", "SUCCESS", "--output", '{"value": 4}', fail=True)
    assert clash.returncode == 1
    assert f"Action execution {action_id} is already SUCCESS" in clash.stderr
    # The same result again is accepted and changes nothing.
    assert (
        mistral.value(
            "action-execution-update", action_id, "--state", "SUCCESS", "--output", '{"value": 3}', "-c", "State"
        )
        == "SUCCESS"
    )
    assert ActionExecution.objects.get(id=action_id).output == {"result": {"value": 3}}
    assert TaskExecution.objects.get(id=wait_id).result == {"value": 3}


def test_pause_resume_cancel_plain_output_and_unknown_ids(mistral, cli_demo_yaml):
    mistral("workflow-create", mistral.file("cli_demo.yaml", cli_demo_yaml))

    ex_id = mistral.value("execution-create", "cli_demo", "-c", "ID")  # default input: name=world
    assert mistral.value("execution-update", "-s", "PAUSED", ex_id, "-c", "State") == "PAUSED"
    assert mistral.json("execution-get", ex_id, "-c", "State", "-c", "State info") == {
        "State": "PAUSED",
        "State info": None,
    }
    assert mistral.value("execution-update", "-s", "RUNNING", ex_id, "-c", "State") == "RUNNING"
    assert mistral.value("execution-update", "-s", "CANCELLED", ex_id, "-c", "State") == "CANCELLED"
    # Mistral answers 200 and leaves it CANCELLED; Gust says so with a 409.
    resume = mistral("execution-update", "-s", "RUNNING", ex_id, fail=True)
    assert f"Can not resume execution {ex_id} in state CANCELLED" in resume.stderr
    assert mistral.value("execution-get", ex_id, "-c", "State") == "CANCELLED"
    assert f"Request to delete execution {ex_id} has been accepted." in mistral("execution-delete", ex_id).stdout
    assert not WorkflowExecution.objects.filter(id=ex_id).exists()

    # --output 3: Mistral answers 400, Gust accepts any JSON value as the docs show.
    ex2 = mistral.value("execution-create", "cli_demo", '{"name": "plain"}', "-c", "ID")
    action_id = ActionExecution.objects.get(workflow_execution_id=ex2, name="std.async_noop").id
    assert (
        mistral.value("action-execution-update", action_id, "--state", "SUCCESS", "--output", "3", "-c", "State")
        == "SUCCESS"
    )
    assert json.loads(mistral("execution-get-output", ex2).stdout) == {
        "echoed": "hello plain",
        "async_result": 3,
        "joined": "joined",
    }
    assert ActionExecution.objects.get(id=action_id).output == {"result": 3}

    # Unknown ids fail with the message Mistral's CLI prints.
    for args, message in [
        (("execution-get", UNKNOWN), f"WorkflowExecution not found [id={UNKNOWN}]"),
        (("task-get", UNKNOWN), f"TaskExecution not found [id={UNKNOWN}]"),
        (("action-execution-get", UNKNOWN), f"ActionExecution not found [id={UNKNOWN}]"),
        (
            ("action-execution-update", UNKNOWN, "--state", "SUCCESS", "--output", '{"value": 3}'),
            f"ActionExecution not found [id={UNKNOWN}]",
        ),
        (("execution-create", "no_such_wf"), "Workflow not found [workflow_identifier=no_such_wf, namespace=]"),
    ]:
        res = mistral(*args, fail=True)
        assert res.returncode == 1
        assert message in res.stderr, res

    names = {a["Name"] for a in mistral.json("action-list")}
    assert {"std.echo", "std.noop", "std.async_noop", "std.http", "std.mistral_http"} <= names
