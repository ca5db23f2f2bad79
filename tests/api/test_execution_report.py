"""``GET /v2/executions/<id>/report``: the scenarios of Mistral 23's
mistral/tests/unit/api/v2/test_execution_report.py (its workbook holds the
two workflows; here they are plain workflows, as workbooks are another
branch's), plus Gust's bound on the tree's size and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.tree_workflows import NESTED, ONE_ASYNC, SEQUENCE
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def one(items, **match):
    found = [i for i in items if all(i.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]


def stats(**counts):
    base = {f"{n}_tasks_count": 0 for n in ("total", "running", "success", "error", "idle", "paused")}
    return {**base, **{f"{k}_tasks_count": v for k, v in counts.items()}}


def report(api, ex_id, **params):
    status, body = api.get(f"/v2/executions/{ex_id}/report", **params)
    assert status == 200, body
    return body


def test_simple_sequence_wf(api):
    """test_simple_sequence_wf: the root entry, each task with its action executions, the counts."""
    api.create_workflow(SEQUENCE)
    ex = api.start("wf")
    body = report(api, ex["id"])
    root = body["root_workflow_execution"]
    assert (root["id"], root["name"], root["state"]) == (ex["id"], "wf", "ERROR")
    assert root["state_info"]
    assert set(root) == {"id", "name", "created_at", "updated_at", "state", "state_info", "task_executions"}
    tasks = root["task_executions"]
    assert [t["name"] for t in tasks] == ["task1", "task2"]
    task1 = one(tasks, name="task1", state="SUCCESS")
    assert set(task1) == {
        "id",
        "name",
        "created_at",
        "updated_at",
        "state",
        "state_info",
        "action_executions",
        "workflow_executions",
    }  # no retry_count: the task has no retry policy
    assert task1["workflow_executions"] == []
    (action1,) = task1["action_executions"]
    assert (action1["name"], action1["state"], action1["accepted"]) == ("std.noop", "SUCCESS", True)
    assert set(action1) == {
        "id",
        "name",
        "created_at",
        "updated_at",
        "state",
        "state_info",
        "accepted",
        "last_heartbeat",
    }
    assert action1["id"] == ActionExecution.objects.get(task_execution_id=task1["id"]).id
    task2 = one(tasks, name="task2", state="ERROR")
    assert [a["state"] for a in task2["action_executions"]] == ["ERROR"] and task2["workflow_executions"] == []
    assert body["statistics"] == {**stats(total=2, success=1, error=1), "estimated_time": 0}


def test_nested_wf(api):
    """test_nested_wf: a sub-workflow execution is under its task, with its own tasks, counted too."""
    api.create_workflow(NESTED)
    ex = api.start("parent_wf")
    root = report(api, ex["id"])["root_workflow_execution"]
    assert (root["name"], root["state"]) == ("parent_wf", "ERROR")
    tasks = root["task_executions"]
    assert len(tasks) == 2  # task3 never ran
    task2 = one(tasks, name="task2", state="ERROR")
    assert task2["action_executions"] == []
    (sub,) = task2["workflow_executions"]
    child = WorkflowExecution.objects.get(task_execution_id=task2["id"])
    assert (sub["id"], sub["name"], sub["state"]) == (child.id, "sub_wf", "ERROR")
    sub_tasks = sub["task_executions"]
    assert [a["state"] for a in one(sub_tasks, name="task1", state="SUCCESS")["action_executions"]] == ["SUCCESS"]
    assert [a["state"] for a in one(sub_tasks, name="task2", state="ERROR")["action_executions"]] == ["ERROR"]
    assert report(api, ex["id"])["statistics"] == {**stats(total=4, success=2, error=2), "estimated_time": 0}


def test_statistics_only(api):
    """test_statistics_only: the counts of the whole tree, no tree."""
    api.create_workflow(NESTED)
    ex = api.start("parent_wf")
    body = report(api, ex["id"], statistics_only="True")
    assert body == {"statistics": {**stats(total=4, success=2, error=2), "estimated_time": 0}}
    # with max_depth, as Mistral's analyse_execution_statistics_only: the root's tasks only
    assert report(api, ex["id"], statistics_only="true", max_depth="0")["statistics"] == {
        **stats(total=2, success=1, error=1),
        "estimated_time": 0,
    }


def test_nested_wf_errors_only(api):
    """test_nested_wf_errors_only: only the tasks in ERROR, down the tree, and only they are counted."""
    api.create_workflow(NESTED)
    ex = api.start("parent_wf")
    body = report(api, ex["id"], errors_only="true")
    (task2,) = body["root_workflow_execution"]["task_executions"]
    assert (task2["name"], task2["state"], task2["action_executions"]) == ("task2", "ERROR", [])
    (sub,) = task2["workflow_executions"]
    (sub_task2,) = sub["task_executions"]
    assert (sub_task2["name"], [a["state"] for a in sub_task2["action_executions"]]) == ("task2", ["ERROR"])
    assert body["statistics"] == {**stats(total=2, error=2), "estimated_time": 0}


def test_nested_wf_max_depth(api):
    """test_nested_wf_max_depth: max_depth=0 keeps the sub-workflow's entry without its tasks."""
    api.create_workflow(NESTED)
    ex = api.start("parent_wf")
    body = report(api, ex["id"], max_depth="0")
    task2 = one(body["root_workflow_execution"]["task_executions"], name="task2")
    (sub,) = task2["workflow_executions"]
    assert sub["state"] == "ERROR" and "task_executions" not in sub
    assert body["statistics"] == {**stats(total=2, success=1, error=1), "estimated_time": 0}
    deep = report(api, ex["id"], max_depth="1")
    assert (
        len(
            one(deep["root_workflow_execution"]["task_executions"], name="task2")["workflow_executions"][0][
                "task_executions"
            ]
        )
        == 2
    )


def test_retry_count(api):
    """test_retry_count (delay 0 here, so the retries run in the same step)."""
    api.create_workflow(SEQUENCE + "      retry: delay=0 count=3\n")
    ex = api.start("wf")
    tasks = report(api, ex["id"])["root_workflow_execution"]["task_executions"]
    task2 = one(tasks, name="task2", state="ERROR")
    assert task2["retry_count"] == 3
    assert [a["accepted"] for a in task2["action_executions"]] == [False, False, False, True]
    assert "retry_count" not in one(tasks, name="task1")


def test_estimated_time_no_previous_executions(api):
    """test_estimated_time_no_previous_executions: -1 for a running workflow that never succeeded."""
    api.create_workflow(ONE_ASYNC)
    ex = api.start("wf1")
    assert report(api, ex["id"], statistics_only="True")["statistics"]["estimated_time"] == -1


def test_estimated_time_is_the_average_run_of_earlier_successes_minus_the_time_run(api):
    """test_estimated_time: earlier successful runs of 1,000 s on average (their
    times set in the database), so a run that just started has nearly 1,000 s left."""
    api.create_workflow(ONE_ASYNC)
    done = []
    for seconds in (900, 1100):
        ex = api.start("wf1")
        action = ActionExecution.objects.get(workflow_execution_id=ex["id"])
        assert api.put(f"/v2/action_executions/{action.id}", {"state": "SUCCESS", "output": 1})[0] == 200
        row = WorkflowExecution.objects.get(id=ex["id"])
        WorkflowExecution.objects.filter(id=row.id).update(updated_at=row.created_at + timedelta(seconds=seconds))
        done.append(row.id)
    running = api.start("wf1")
    estimate = report(api, running["id"], statistics_only="True")["statistics"]["estimated_time"]
    assert 900 < estimate <= 1000
    # a finished execution has nothing left
    assert report(api, done[0], statistics_only="True")["statistics"]["estimated_time"] == 0
    # a run longer than the average: at least 1, as Mistral's
    WorkflowExecution.objects.filter(id=running["id"]).update(
        created_at=WorkflowExecution.objects.get(id=running["id"]).created_at - timedelta(hours=1)
    )
    assert report(api, running["id"], statistics_only="True")["statistics"]["estimated_time"] == 1


ITEMS_OVER_CHILD = """
version: '2.0'
parent:
  tasks:
    fan:
      with-items: x in <% [1, 2, 3] %>
      workflow: child x=<% $.x %>
child:
  input: [x]
  tasks:
    one:
      action: std.echo output=<% $.x %>
"""


def test_a_with_items_task_over_a_sub_workflow_lists_each_child(api):
    api.create_workflow(ITEMS_OVER_CHILD)
    ex = api.start("parent")
    (fan,) = report(api, ex["id"])["root_workflow_execution"]["task_executions"]
    assert fan["state"] == "SUCCESS" and fan["action_executions"] == []
    children = fan["workflow_executions"]
    assert [c["name"] for c in children] == ["child"] * 3
    assert all(len(c["task_executions"]) == 1 for c in children)
    assert report(api, ex["id"], statistics_only="true")["statistics"]["success_tasks_count"] == 4


def test_a_tree_larger_than_the_limit_is_refused_with_how_to_ask_for_less(api, settings):
    """A with-items task can hold 10,000 action executions: past
    GUST["REPORT_MAX_ENTRIES"] the report is a 400, the statistics still answer."""
    settings.GUST = {**settings.GUST, "REPORT_MAX_ENTRIES": 5}
    api.create_workflow("""
version: '2.0'
many:
  tasks:
    items:
      with-items: x in <% range(6) %>
      action: std.echo output=<% $.x %>
""")
    ex = api.start("many")
    status, body = api.get(f"/v2/executions/{ex['id']}/report")
    assert status == 400
    assert body["faultstring"] == (
        f"The report of execution {ex['id']} would hold more than 5 entries (task, action and sub-workflow "
        "executions; GUST_REPORT_MAX_ENTRIES). Ask for less with errors_only=true, max_depth=<n> or "
        "statistics_only=true."
    )
    assert report(api, ex["id"], statistics_only="true")["statistics"]["success_tasks_count"] == 1
    # errors_only leaves the successful task (and its six actions) out, so it fits
    assert report(api, ex["id"], errors_only="true")["root_workflow_execution"]["task_executions"] == []
    settings.GUST = {**settings.GUST, "REPORT_MAX_ENTRIES": 7}
    (items,) = report(api, ex["id"])["root_workflow_execution"]["task_executions"]
    assert len(items["action_executions"]) == 6


def test_bad_input_is_refused_with_a_faultstring(api):
    api.create_workflow(SEQUENCE)
    ex = api.start("wf")
    assert api.get(f"/v2/executions/{UNKNOWN}/report") == (
        404,
        {"faultstring": f"WorkflowExecution not found [id={UNKNOWN}]"},
    )
    for params, message in [
        ({"errors_only": "maybe"}, "Invalid input for field/attribute errors_only. Value: 'maybe'."),
        ({"statistics_only": "2"}, "Invalid input for field/attribute statistics_only. Value: '2'."),
        ({"max_depth": "deep"}, "Invalid input for field/attribute max_depth. Value: 'deep'."),
        ({"depth": "1"}, "Unknown argument: depth; known: errors_only, max_depth, statistics_only"),
    ]:
        status, body = api.get(f"/v2/executions/{ex['id']}/report", **params)
        assert status == 400 and message in body["faultstring"], (params, body)
    assert TaskExecution.objects.filter(workflow_execution_id=ex["id"]).count() == 2
