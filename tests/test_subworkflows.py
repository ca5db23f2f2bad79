"""Sub-workflows and with-items through the service layer, on the real
database: the behaviour of Mistral 23's engine tests test_subworkflows.py,
test_subworkflows_pause_resume.py and test_with_items.py."""

import pytest

from workflows import services
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)

WB1 = """
version: '2.0'
wf1:
  input: [param1, param2]
  output:
    final_result: <% $.final_result %>
  tasks:
    task1:
      action: std.echo output=<% $.param1 %>
      on-success: task2
    task2:
      action: std.echo output="'<% $.param1 %> & <% $.param2 %>'"
      publish:
        final_result: <% task(task2).result %>
wf2:
  output:
    slogan: <% $.slogan %>
  tasks:
    task1:
      workflow: wf1 param1='Bonnie' param2='Clyde'
      publish:
        slogan: "<% task(task1).result.final_result %> is a cool movie!"
"""


def ex(id_):
    return WorkflowExecution.objects.get(id=id_)


def children(task):
    return list(WorkflowExecution.objects.filter(task_execution_id=task.id).order_by("created_at"))


def test_a_sub_workflow_runs_and_its_output_is_the_task_result():
    """test_subworkflow_success: the child carries task_execution_id and
    root_execution_id, its params the namespace and env."""
    services.save_workflows(WB1)
    parent = services.start_execution("wf2", {}, {"env": {"k": "v"}})
    parent = ex(parent.id)
    assert parent.state == "SUCCESS", parent.state_info
    assert parent.output == {"slogan": "'Bonnie & Clyde' is a cool movie!"}
    task = TaskExecution.objects.get(workflow_execution=parent, name="task1")
    (child,) = children(task)
    assert child.workflow_name == "wf1" and child.state == "SUCCESS"
    assert child.root_execution_id == parent.id and child.task_execution_id == task.id
    assert child.input == {"param1": "Bonnie", "param2": "Clyde"}
    assert child.params["namespace"] == "" and child.params["env"] == {"k": "v"}
    assert child.description == "sub-workflow execution" and child.accepted is True
    assert task.result == {"final_result": "'Bonnie & Clyde'"} and task.type == "WORKFLOW"
    assert ActionExecution.objects.filter(task_execution=task).count() == 0


def test_a_failed_sub_workflow_fails_the_task_with_its_state_info():
    """test_subworkflow_error / WB2: the child's output expression fails."""
    services.save_workflows("""
version: '2.0'
wf1:
  tasks:
    task1:
      workflow: wf2
wf2:
  output:
    var1: <% $.does_not_exist %>
  tasks:
    task1:
      action: std.noop
""")
    parent = ex(services.start_execution("wf1", {}).id)
    task = TaskExecution.objects.get(workflow_execution=parent, name="task1")
    (child,) = children(task)
    assert child.state == "ERROR" and parent.state == "ERROR"
    assert task.state == "ERROR" and task.state_info == child.state_info
    assert f"[wf_ex_id={child.id}, idx=0]" in parent.state_info


def test_an_expression_names_the_sub_workflow_and_gives_its_input():
    """WB4: workflow: <% $.wf_name %>, input: <% $.inp %>."""
    services.save_workflows("""
version: '2.0'
wf1:
  input: [wf_name, inp]
  output:
    sub_wf_out: <% $.sub_wf_out %>
  tasks:
    task1:
      workflow: <% $.wf_name %>
      input: <% $.inp %>
      publish:
        sub_wf_out: <% task(task1).result.sub_wf_out %>
wf2:
  input: [inp]
  output:
    sub_wf_out: <% $.inp %>
  tasks:
    task1:
      action: std.noop
""")
    parent = ex(services.start_execution("wf1", {"wf_name": "wf2", "inp": {"inp": "abc"}}).id)
    assert parent.state == "SUCCESS" and parent.output == {"sub_wf_out": "abc"}


def test_an_unknown_sub_workflow_fails_the_task_and_on_error_applies():
    services.save_workflows("""
version: '2.0'
wf1:
  tasks:
    task1:
      workflow: nope
      on-error: handled
    handled:
      action: std.noop
""")
    parent = ex(services.start_execution("wf1", {}).id)
    task = TaskExecution.objects.get(workflow_execution=parent, name="task1")
    assert task.state == "ERROR" and task.state_info == "Failed to find workflow [name=nope] [namespace=]"
    assert parent.state == "SUCCESS"


def test_missing_sub_workflow_input_fails_the_task_with_mistral_text():
    services.save_workflows("""
version: '2.0'
wf1:
  tasks:
    task1:
      workflow: wf2
wf2:
  input: [needed]
  tasks:
    t: {action: std.noop}
""")
    parent = ex(services.start_execution("wf1", {}).id)
    task = TaskExecution.objects.get(workflow_execution=parent, name="task1")
    assert task.state_info == "Invalid input [name=wf2, class=DirectWorkflowSpec, missing=['needed']]"
    assert parent.state == "ERROR" and WorkflowExecution.objects.count() == 1


def test_an_async_sub_workflow_completes_its_parent_later():
    services.save_workflows("""
version: '2.0'
parent:
  tasks:
    call:
      workflow: child
      publish: {got: <% task().result.out %>}
      on-success: after
    after:
      action: std.echo output=<% $.got %>
child:
  output: {out: <% task(wait).result %>}
  tasks:
    wait: {action: std.async_noop}
""")
    parent = services.start_execution("parent", {})
    (child,) = WorkflowExecution.objects.filter(root_execution_id=parent.id)
    assert ex(parent.id).state == "RUNNING" and child.state == "RUNNING"
    action = ActionExecution.objects.get(workflow_execution=child)
    services.complete_action(action.id, "SUCCESS", "done")
    parent = ex(parent.id)
    assert ex(child.id).state == "SUCCESS" and parent.state == "SUCCESS"
    assert TaskExecution.objects.get(workflow_execution=parent, name="after").result == "done"


PARENT_OF_WAITING_CHILD = """
version: '2.0'
parent:
  tasks:
    call: {workflow: child}
child:
  tasks:
    wait: {action: std.async_noop}
"""


def test_cancel_and_pause_cascade_down_and_resume_goes_down_too():
    services.save_workflows(PARENT_OF_WAITING_CHILD)
    parent = services.start_execution("parent", {})
    (child,) = WorkflowExecution.objects.filter(root_execution_id=parent.id)
    services.change_execution_state(parent.id, "PAUSED")
    assert ex(child.id).state == "PAUSED"
    services.change_execution_state(parent.id, "RUNNING")
    assert ex(child.id).state == "RUNNING"
    services.change_execution_state(parent.id, "CANCELLED", "stop it")
    assert ex(parent.id).state == "CANCELLED"
    assert ex(child.id).state == "CANCELLED"
    assert ActionExecution.objects.get(workflow_execution=child).state == "CANCELLED"


def test_a_cancelled_sub_workflow_cancels_the_parent():
    """A child cancelled on its own: the task and the parent end CANCELLED
    ("Cancelled tasks: call"), as Mistral's check_and_complete."""
    services.save_workflows(PARENT_OF_WAITING_CHILD)
    parent = services.start_execution("parent", {})
    (child,) = WorkflowExecution.objects.filter(root_execution_id=parent.id)
    services.change_execution_state(child.id, "CANCELLED")
    parent = ex(parent.id)
    assert parent.state == "CANCELLED" and parent.state_info == "Cancelled tasks: call"
    assert TaskExecution.objects.get(workflow_execution=parent).state == "CANCELLED"


def test_recursion_works_and_is_bounded(settings):
    settings.GUST = {**settings.GUST, "SUBWORKFLOW_MAX_DEPTH": 3}
    services.save_workflows("""
version: '2.0'
rec:
  input: [n]
  output: {n: <% $.n %>}
  tasks:
    again:
      workflow: rec n=<% $.n - 1 %>
""")
    root = ex(services.start_execution("rec", {"n": 5}).id)
    assert root.state == "ERROR"
    assert WorkflowExecution.objects.count() == 4  # the root and 3 levels below it
    deepest = WorkflowExecution.objects.order_by("-created_at").first()
    task = TaskExecution.objects.get(workflow_execution=deepest)
    assert "more than the limit of 3 (GUST_SUBWORKFLOW_MAX_DEPTH)" in task.state_info


def test_with_items_over_sub_workflows():
    """test_with_items_subflow_concurrency_gt_list_length and
    test_with_items_sub_workflow_fail."""
    services.save_workflows("""
version: '2.0'
main:
  input: [names]
  tasks:
    task1:
      with-items: name in <% $.names %>
      workflow: subflow1 name=<% $.name %>
      concurrency: 3
subflow1:
  input: [name]
  output:
    result: <% task(task1).result %>
  tasks:
    task1:
      action: std.echo output=<% $.name %>
""")
    names = ["Peter", "Susan", "Edmund", "Lucy", "Aslan", "Caspian"]
    parent = ex(services.start_execution("main", {"names": names}).id)
    assert parent.state == "SUCCESS"
    task = TaskExecution.objects.get(workflow_execution=parent)
    assert [r["result"] for r in task.result] == names
    assert [c.params["index"] for c in children(task)] == list(range(6))


def test_with_items_over_async_actions_through_the_api_path():
    services.save_workflows("""
version: '2.0'
wf:
  tasks:
    t:
      with-items: i in [1, 2, 3, 4, 5]
      action: std.async_noop
      concurrency: 2
      publish: {all: <% task().result %>}
""")
    execution = services.start_execution("wf", {})
    for _ in range(5):
        live = ActionExecution.objects.filter(workflow_execution_id=execution.id, state="RUNNING")
        assert live.count() <= 2
        a = live.order_by("created_at").last()
        services.complete_action(a.id, "SUCCESS", a.runtime_context["index"] * 10)
    execution = ex(execution.id)
    task = TaskExecution.objects.get(workflow_execution=execution)
    assert execution.state == "SUCCESS" and task.result == [0, 10, 20, 30, 40]
    assert task.items == {"i": [1, 2, 3, 4, 5]}  # evaluated once, read back when more items start
    assert task.published == {"all": [0, 10, 20, 30, 40]}


def test_with_items_retry_invalidates_the_earlier_round_in_the_database():
    services.save_workflows("""
version: '2.0'
wf:
  tasks:
    task1:
      with-items: i in [1, 2]
      action: std.fail
      retry: {count: 1, delay: 0}
      on-error: task2
    task2:
      action: std.echo output="With-items failed"
""")
    execution = ex(services.start_execution("wf", {}).id)
    assert execution.state == "SUCCESS"
    task = TaskExecution.objects.get(workflow_execution=execution, name="task1")
    rows = ActionExecution.objects.filter(task_execution=task)
    assert rows.count() == 4 and rows.filter(accepted=True).count() == 2


REVERSE = """
version: '2.0'
rev:
  type: reverse
  input: [param1, param2]
  output:
    final_result: <% $.final_result %>
  tasks:
    task1:
      action: std.echo output=<% $.param1 %>
      publish:
        result1: <% task(task1).result %>
    task2:
      action: std.echo output="'<% $.param1 %> & <% $.param2 %>'"
      publish:
        final_result: <% task(task2).result %>
      requires: [task1]
    other:
      action: std.noop
caller:
  output:
    slogan: <% $.slogan %>
  tasks:
    task1:
      workflow: rev param1='Bonnie' param2='Clyde' task_name='task2'
      publish:
        slogan: "<% task(task1).result.final_result %> is a cool movie!"
"""


def test_a_reverse_workflow_runs_for_params_task_name_also_as_a_sub_workflow():
    """test_subworkflows.py WB1: the reverse child gets task_name through
    its input (a key it does not declare, so a param)."""
    from workflows.errors import InvalidInput

    services.save_workflows(REVERSE)
    direct = ex(services.start_execution("rev", {"param1": "a", "param2": "b"}, {"task_name": "task2"}).id)
    assert direct.state == "SUCCESS" and direct.output == {"final_result": "'a & b'"}
    assert sorted(direct.tasks.values_list("name", flat=True)) == ["task1", "task2"]
    with pytest.raises(InvalidInput, match=r"Invalid task name \[wf_spec=rev, task_name=nope\]"):
        services.start_execution("rev", {"param1": "a", "param2": "b"}, {"task_name": "nope"})
    parent = ex(services.start_execution("caller", {}).id)
    assert parent.state == "SUCCESS", parent.state_info
    assert parent.output == {"slogan": "'Bonnie & Clyde' is a cool movie!"}
    child = WorkflowExecution.objects.get(root_execution_id=parent.id)
    assert child.params["task_name"] == "task2"
    assert sorted(child.tasks.values_list("name", flat=True)) == ["task1", "task2"]
