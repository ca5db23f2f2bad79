"""The real ``mistral`` command for workbooks, ad-hoc actions and namespaces
against a live Gust (python-mistralclient's commands/v2/workbooks.py and
actions.py). Few long scenarios: every call costs about half a second."""

from __future__ import annotations

import json

import pytest

from workflows.models import ActionDefinition, Workbook, WorkflowDefinition, WorkflowExecution

pytestmark = [pytest.mark.cli, pytest.mark.django_db(transaction=True)]

WB = """\
---
version: '2.0'
name: greetings
tags: [demo]
actions:
  hello:
    input:
      - who: world
    base: std.echo
    base-input:
      output: "hello <% $.who %>"
    output: <% $.toUpper() %>
workflows:
  say:
    output:
      said: <% $.said %>
    tasks:
      greet:
        action: hello who=ann
        publish:
          said: <% task().result %>
"""

ACTION = """\
---
version: '2.0'
shout:
  description: upper case
  input: [text]
  base: std.echo output=<% $.text %>
  output: <% $.toUpper() %>
"""


def test_workbook_commands(mistral):
    path = mistral.file("wb.yaml", WB)
    assert mistral.json("workbook-validate", path) == {"Valid": True, "Error": None}
    bad = mistral.file("bad.yaml", WB.replace("name: greetings\n", ""))
    invalid = mistral.json("workbook-validate", bad)
    assert invalid["Valid"] is False and "name: 'name' is a required property" in invalid["Error"]

    created = mistral.json("workbook-create", path)
    assert (created["Name"], created["Namespace"], created["Tags"], created["Scope"]) == (
        "greetings",
        "",
        "demo",
        "private",
    )
    again = mistral("workbook-create", path, fail=True)
    assert "Duplicate entry for WorkbookDefinition" in again.stderr
    assert [w["Name"] for w in mistral.json("workbook-list")] == ["greetings"]
    assert mistral.json("workbook-get", "greetings")["Name"] == "greetings"
    assert mistral("workbook-get-definition", "greetings").stdout.strip() == WB.strip()
    assert [w["Name"] for w in mistral.json("workflow-list")] == ["greetings.say"]

    ex = mistral.json("execution-create", "greetings.say")
    assert WorkflowExecution.objects.get(id=ex["ID"]).output == {"said": "HELLO ANN"}

    updated = mistral.json("workbook-update", mistral.file("wb2.yaml", WB.replace("say:", "speak:")))
    assert updated["Updated at"]
    assert sorted(WorkflowDefinition.objects.values_list("name", flat=True)) == ["greetings.speak"]

    assert mistral.json("workbook-create", path, "--namespace", "team")["Namespace"] == "team"
    assert mistral.json("workbook-get", "greetings", "--namespace", "team")["Namespace"] == "team"
    team_ex = mistral.json("execution-create", "greetings.say", "--namespace", "team")
    assert WorkflowExecution.objects.get(id=team_ex["ID"]).workflow_namespace == "team"

    mistral("workbook-delete", "greetings")
    mistral("workbook-delete", "greetings", "--namespace", "team")
    assert not (Workbook.objects.exists() or WorkflowDefinition.objects.exists() or ActionDefinition.objects.exists())
    missing = mistral("workbook-get", "greetings", fail=True)
    assert "Workbook not found [name=greetings, namespace=]" in missing.stderr


def test_action_commands(mistral):
    path = mistral.file("shout.yaml", ACTION)
    created = mistral.json("action-create", path)
    assert [(a["Name"], a["Is system"], a["Input"], a["Description"]) for a in created] == [
        ("shout", False, "text", "upper case")
    ]
    listed = {a["Name"]: a["Is system"] for a in mistral.json("action-list")}
    assert listed["shout"] is False and listed["std.echo"] is True
    assert mistral.json("action-get", "shout")["Name"] == "shout"
    assert mistral.json("action-get", "std.echo")["Is system"] is True

    mistral("action-update", mistral.file("shout2.yaml", ACTION.replace("upper case", "louder")))
    assert ActionDefinition.objects.get(name="shout").description == "louder"

    mistral.file(
        "wf.yaml",
        "version: '2.0'\nloud:\n  tasks:\n    t:\n      action: shout text=hi\n"
        "      publish: {r: <% task().result %>}\n",
    )
    mistral("workflow-create", "wf.yaml")
    ex = mistral.json("execution-create", "loud")
    assert json.loads(mistral("execution-get-output", ex["ID"]).stdout) == {"r": "HI"}

    assert mistral.json("action-create", path, "--namespace", "team")[0]["Name"] == "shout"
    assert [a["Name"] for a in mistral.json("action-list", "--namespace", "team")] == ["shout"]
    mistral("action-delete", "shout", "--namespace", "team")
    mistral("action-delete", "shout")
    assert not ActionDefinition.objects.exists()
    refused = mistral("action-create", mistral.file("bad.yaml", "version: '2.0'\nx:\n  input: [a]\n"), fail=True)
    assert "x: 'base' is a required property" in refused.stderr


def test_workflow_commands_in_a_namespace(mistral):
    path = mistral.file("wf.yaml", "version: '2.0'\nhi:\n  tasks:\n    t: {action: std.noop}\n")
    assert mistral.json("workflow-create", path, "--namespace", "team")[0]["Namespace"] == "team"
    assert mistral.json("workflow-create", path)[0]["Namespace"] == ""  # the same name, another definition
    assert mistral.json("workflow-get", "hi", "--namespace", "team")["Namespace"] == "team"
    ex = mistral.json("execution-create", "hi", "--namespace", "team")
    assert WorkflowExecution.objects.get(id=ex["ID"]).workflow_namespace == "team"
    mistral("workflow-delete", "hi", "--namespace", "team")
    assert list(WorkflowDefinition.objects.values_list("namespace", flat=True)) == [""]
    missing = mistral("execution-create", "hi", "--namespace", "team", fail=True)
    assert "Workflow not found [workflow_identifier=hi, namespace=team]" in missing.stderr
