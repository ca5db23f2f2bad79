"""The real ``mistral`` command against a live Gust for sub-workflows,
with-items and reverse workflows: ``execution-list --task``,
``execution-get`` of a child, ``execution-get-report``,
``execution-get-sub-executions``, ``task-get-sub-executions``, ``task-rerun``
(``--resume``) and ``execution-create`` with ``task_name``. What each
command sends is python-mistralclient's (api/v2/executions.py ``list``
sends ``task_execution_id``, ``get_report`` sends ``errors_only``,
``max_depth``, ``statistics_only``, ``get_ex_sub_executions`` and tasks.py
``get_task_sub_executions`` send ``max_depth`` and ``errors_only``; tasks.py
``rerun`` sends ``reset``)."""

from __future__ import annotations

import json

import pytest

from tests.tree_workflows import NESTED
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = [pytest.mark.cli, pytest.mark.django_db(transaction=True)]

ITEMS = """\
---
version: '2.0'
items_wf:
  tasks:
    fan:
      with-items: i in [0, 1, 2]
      action: std.async_noop
plain_wf:
  tasks:
    once:
      action: std.fail
"""

REVERSE = """\
---
version: '2.0'
rev_wf:
  type: reverse
  tasks:
    t1:
      action: std.echo output=one
      publish:
        first: <% task().result %>
    t2:
      action: std.echo output=two
      requires: [t1]
    t3:
      action: std.echo output=three
"""


def test_sub_workflow_listing_and_the_execution_report(mistral):
    mistral("workflow-create", mistral.file("nested.yaml", NESTED))
    ex_id = mistral.value("execution-create", "parent_wf", "-c", "ID")
    assert mistral.value("execution-get", ex_id, "-c", "State") == "ERROR"
    task2 = next(t for t in mistral.json("task-list", ex_id) if t["Name"] == "task2")
    child = WorkflowExecution.objects.get(task_execution_id=task2["ID"])

    listed = mistral.json("execution-list", "--task", task2["ID"])
    assert [(e["ID"], e["Workflow name"], e["State"]) for e in listed] == [(child.id, "sub_wf", "ERROR")]
    shown = mistral.json("execution-get", child.id)
    assert (shown["Task Execution ID"], shown["Root Execution ID"]) == (task2["ID"], ex_id)
    tree = mistral.json("execution-get-sub-executions", ex_id)
    assert [(e["ID"], e["Workflow name"]) for e in tree] == [(ex_id, "parent_wf"), (child.id, "sub_wf")]
    assert [e["ID"] for e in mistral.json("execution-get-sub-executions", ex_id, "--max-depth", "0")] == [ex_id]
    assert [e["ID"] for e in mistral.json("task-get-sub-executions", task2["ID"], "--errors-only")] == [child.id]

    # The CLI asks for errors only unless told otherwise.
    report = mistral("execution-get-report", ex_id).stdout
    assert "Number of tasks in SUCCESS state: 0" in report and "Number of tasks in ERROR state: 2" in report
    assert f"workflow 'parent_wf' [ERROR] {ex_id}" in report
    assert f"task 'task2' [ERROR] {task2['ID']}" in report
    assert f"workflow 'sub_wf' [ERROR] {child.id}" in report
    assert "task 'task1'" not in report
    failed_action = ActionExecution.objects.get(workflow_execution=child, task_name="task2")
    assert f"action 'std.fail' [ERROR] {failed_action.id}" in report
    assert "Estimated time (seconds) for the execution to finish: 0" in report

    full = mistral("execution-get-report", ex_id, "--no-errors-only").stdout
    assert "Number of tasks in SUCCESS state: 2" in full and full.count("task 'task1' [SUCCESS]") == 2

    shallow = mistral("execution-get-report", ex_id, "--no-errors-only", "--max-depth", "0").stdout
    assert f"workflow 'sub_wf' [ERROR] {child.id}" in shallow
    assert shallow.count("task 'task1' [SUCCESS]") == 1 and "Number of tasks in SUCCESS state: 1" in shallow

    stats = mistral("execution-get-report", ex_id, "--statistics-only", "--no-errors-only").stdout
    assert "Number of tasks in SUCCESS state: 2" in stats and "Workflow Execution Tree" not in stats

    # The client reads the body of a 404 without checking the status (as against Mistral): it fails
    # on the missing 'statistics' key; the faultstring is what the API answered.
    missing = mistral("execution-get-report", "00000000-0000-0000-0000-000000000000", fail=True)
    assert missing.stderr.strip() == "ERROR (app) 'statistics'"


def test_task_rerun_resume_reruns_only_the_failed_items(mistral):
    mistral("workflow-create", mistral.file("items.yaml", ITEMS))
    ex_id = mistral.value("execution-create", "items_wf", "-c", "ID")
    fan = TaskExecution.objects.get(workflow_execution_id=ex_id, name="fan")
    items = {a["ID"]: a for a in mistral.json("action-execution-list", fan.id)}
    assert len(items) == 3
    by_index = {ActionExecution.objects.get(id=i).runtime_context["index"]: i for i in items}
    for index, action_id in sorted(by_index.items()):
        state = "ERROR" if index == 1 else "SUCCESS"
        # (not 0: the client drops a falsy --output)
        mistral("action-execution-update", action_id, "--state", state, "--output", json.dumps(10 + index))
    assert mistral.value("task-get", fan.id, "-c", "State") == "ERROR"

    rerun = mistral.json("task-rerun", fan.id, "--resume")
    assert (rerun["ID"], rerun["State"]) == (fan.id, "RUNNING")
    assert mistral.value("execution-get", ex_id, "-c", "State") == "RUNNING"
    listed = mistral.json("action-execution-list", fan.id)
    assert sorted((a["State"], a["Accepted"]) for a in listed) == [
        ("ERROR", False),
        ("RUNNING", False),
        ("SUCCESS", True),
        ("SUCCESS", True),
    ]
    again = next(a["ID"] for a in listed if a["State"] == "RUNNING")
    assert ActionExecution.objects.get(id=again).runtime_context["index"] == 1
    mistral("action-execution-update", again, "--state", "SUCCESS", "--output", "11")
    assert mistral.value("execution-get", ex_id, "-c", "State") == "SUCCESS"
    assert json.loads(mistral("task-get-result", fan.id).stdout) == [10, 11, 12]

    # --resume is for with-items tasks only (Mistral's text); a plain failed task reruns.
    plain_ex = mistral.value("execution-create", "plain_wf", "-c", "ID")
    once = TaskExecution.objects.get(workflow_execution_id=plain_ex, name="once")
    refused = mistral("task-rerun", once.id, "--resume", fail=True)
    assert "Only with-items task has the option to not reset." in refused.stderr
    assert ActionExecution.objects.filter(task_execution=once).count() == 1
    assert mistral.value("task-rerun", once.id, "-c", "State") in ("RUNNING", "ERROR")
    assert ActionExecution.objects.filter(task_execution=once).count() == 2
    not_failed = mistral("task-rerun", fan.id, fail=True)
    assert "Only a task in ERROR can be rerun; fan is SUCCESS" in not_failed.stderr


def test_execution_create_of_a_reverse_workflow_with_task_name(mistral):
    mistral("workflow-create", mistral.file("reverse.yaml", REVERSE))
    ex = mistral.json("execution-create", "rev_wf", "{}", '{"task_name": "t2"}')
    assert ex["State"] in ("RUNNING", "SUCCESS")
    assert mistral.value("execution-get", ex["ID"], "-c", "State") == "SUCCESS"
    assert [t["Name"] for t in mistral.json("task-list", ex["ID"])] == ["t1", "t2"]  # not t3
    assert json.loads(mistral("execution-get-output", ex["ID"]).stdout)["first"] == "one"
    bad = mistral("execution-create", "rev_wf", "{}", '{"task_name": "nope"}', fail=True)
    assert "Invalid task name [wf_spec=rev_wf, task_name=nope]" in bad.stderr
