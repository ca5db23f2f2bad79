"""``GET /v2/executions/<id>/executions`` and ``GET /v2/tasks/<id>/executions``:
the scenarios of Mistral 23's mistral/tests/unit/api/v2/test_sub_execution.py."""

from __future__ import annotations

import pytest

from workflows.models import TaskExecution

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"

WF_TEXT = """---
version: "2.0"
action_wf:
  tasks:
    action_task:
      action: std.noop
fail_wf:
  tasks:
    fail_task:
      action: std.fail
middle_wf:
  tasks:
    middle_task:
      workflow: action_wf
    fail_task:
      workflow: fail_wf
main_wf:
  tasks:
    main_task:
      workflow: middle_wf
"""


@pytest.fixture
def main(api):
    status, _ = api.post_yaml("/v2/workflows", WF_TEXT)
    assert status == 201
    ex = api.start("main_wf")
    assert api.get(f"/v2/executions/{ex['id']}")[1]["state"] == "ERROR"
    return ex


def names(api, path, **params):
    status, body = api.get(path, **params)
    assert status == 200, body
    return [e["workflow_name"] for e in body["executions"]], body["executions"]


def test_sub_executions_wf_ex_id(api, main):
    """test_sub_executions_wf_ex_id: the execution itself first, then depth first in task order."""
    listed, rows = names(api, f"/v2/executions/{main['id']}/executions")
    # (middle_wf's two tasks start together; their order is the engine's, which on PostgreSQL is not the
    # definition's, so only the tree's shape is checked)
    assert listed[:2] == ["main_wf", "middle_wf"] and sorted(listed[2:]) == ["action_wf", "fail_wf"]
    middle = rows[1]
    below_middle = names(api, f"/v2/executions/{middle['id']}/executions")[0]
    assert below_middle[0] == "middle_wf" and sorted(below_middle[1:]) == ["action_wf", "fail_wf"]
    assert middle["root_execution_id"] == main["id"]


def test_sub_executions_errors_only(api, main):
    """test_sub_executions_errors_only: only through tasks in ERROR (the CLI sends True or an empty string)."""
    assert names(api, f"/v2/executions/{main['id']}/executions", errors_only="True")[0] == [
        "main_wf",
        "middle_wf",
        "fail_wf",
    ]
    assert len(names(api, f"/v2/executions/{main['id']}/executions", errors_only="", max_depth="-1")[0]) == 4


def test_sub_executions_with_max_depth(api, main):
    assert names(api, f"/v2/executions/{main['id']}/executions", max_depth="1")[0] == ["main_wf", "middle_wf"]
    assert names(api, f"/v2/executions/{main['id']}/executions", max_depth="0")[0] == ["main_wf"]


def test_sub_executions_task_id(api, main):
    """test_sub_executions_task_id: a task's children and theirs; a task not in ERROR with errors_only: none."""
    main_task = TaskExecution.objects.get(workflow_execution_id=main["id"], name="main_task")
    below_task = names(api, f"/v2/tasks/{main_task.id}/executions")[0]
    assert below_task[0] == "middle_wf" and sorted(below_task[1:]) == ["action_wf", "fail_wf"]
    middle_ex = names(api, f"/v2/tasks/{main_task.id}/executions")[1][0]["id"]
    ok_task = TaskExecution.objects.get(workflow_execution_id=middle_ex, name="middle_task")
    assert names(api, f"/v2/tasks/{ok_task.id}/executions", errors_only="true")[0] == []
    assert names(api, f"/v2/tasks/{ok_task.id}/executions")[0] == ["action_wf"]


def test_sub_executions_with_include_output(api, main):
    rows = names(api, f"/v2/executions/{main['id']}/executions", include_output="true")[1]
    assert rows[0]["output"] is not None
    assert "output" not in names(api, f"/v2/executions/{main['id']}/executions")[1][0]


def test_bad_input(api, main, settings):
    assert api.get(f"/v2/executions/{UNKNOWN}/executions") == (
        404,
        {"faultstring": f"WorkflowExecution not found [id={UNKNOWN}]"},
    )
    assert api.get(f"/v2/tasks/{UNKNOWN}/executions") == (
        404,
        {"faultstring": f"TaskExecution not found [id={UNKNOWN}]"},
    )
    status, body = api.get(f"/v2/executions/{main['id']}/executions", max_depth="x")
    assert status == 400 and "max_depth" in body["faultstring"]
    settings.GUST = {**settings.GUST, "REPORT_MAX_ENTRIES": 3}
    status, body = api.get(f"/v2/executions/{main['id']}/executions")
    assert status == 400 and body["faultstring"].startswith(
        f"The sub-executions of {main['id']} would hold more than 3 entries"
    )
