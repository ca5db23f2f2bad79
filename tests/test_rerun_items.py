"""A with-items task rerun with reset false (``mistral task-rerun --resume``)
on the real database: only the failed items run again, the rows of the
others stay accepted (Mistral's tasks.py _reset_actions and
WithItemsTask._get_next_indexes)."""

import pytest

from tests.tree_workflows import ITEMS_OVER_CHILDREN
from workflows import services
from workflows.errors import Conflict
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = """
version: '2.0'
wf:
  tasks:
    task1:
      with-items: i in [0, 1, 2]
      action: std.async_noop
      publish:
        got: <% task().result %>
"""


def _items(task_id):
    return list(ActionExecution.objects.filter(task_execution_id=task_id).order_by("created_at", "id"))


def test_only_the_failed_item_runs_again_and_the_result_keeps_item_order():
    services.save_workflows(ITEMS)
    ex = services.start_execution("wf", {})
    task = TaskExecution.objects.get(workflow_execution=ex, name="task1")
    first = _items(task.id)
    for a in first:
        index = a.runtime_context["index"]
        services.complete_action(a.id, "ERROR" if index == 1 else "SUCCESS", f"boom {index}" if index == 1 else index)
    assert WorkflowExecution.objects.get(id=ex.id).state == "ERROR"

    services.rerun_task(task.id, reset=False)
    rows = _items(task.id)
    assert len(rows) == 4
    assert [(r.runtime_context["index"], r.state, r.accepted) for r in rows] == [
        (0, "SUCCESS", True),
        (1, "ERROR", False),
        (2, "SUCCESS", True),
        (1, "RUNNING", False),
    ]
    assert WorkflowExecution.objects.get(id=ex.id).state == "RUNNING"
    services.complete_action(rows[3].id, "SUCCESS", 1)
    task.refresh_from_db()
    assert task.state == "SUCCESS" and task.result == [0, 1, 2] and task.published == {"got": [0, 1, 2]}
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"
    with pytest.raises(Conflict):  # a task no longer in ERROR
        services.rerun_task(task.id, reset=False)


def test_a_failed_child_of_a_with_items_task_over_a_sub_workflow_is_started_again_alone():
    services.save_workflows(ITEMS_OVER_CHILDREN)
    ex = services.start_execution("parent", {})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    kids = list(WorkflowExecution.objects.filter(task_execution_id=fan.id).order_by("created_at"))
    for kid in kids:
        action = ActionExecution.objects.get(workflow_execution=kid)
        services.complete_action(action.id, "ERROR" if kid.params["index"] == 1 else "SUCCESS", kid.input["x"])
    assert WorkflowExecution.objects.get(id=ex.id).state == "ERROR"
    services.rerun_task(fan.id, reset=False)
    kids = list(WorkflowExecution.objects.filter(task_execution_id=fan.id).order_by("created_at"))
    assert [(k.params["index"], k.state, k.accepted) for k in kids] == [
        (0, "SUCCESS", True),
        (1, "ERROR", False),
        (1, "RUNNING", None),
    ]
    services.complete_action(ActionExecution.objects.get(workflow_execution=kids[2]).id, "SUCCESS", 2)
    fan.refresh_from_db()
    assert fan.state == "SUCCESS" and len(fan.result) == 2
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"
