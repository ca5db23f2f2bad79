"""with-items in the pure engine, from Mistral 23's engine tests
(mistral/tests/unit/engine/test_with_items.py) and its WithItemsTask."""

from core import engine
from tests.engine.helpers import Harness


def wf(body: str) -> str:
    return "version: '2.0'\nwf:\n" + body


NAMES = {"names_info": [{"name": "John"}, {"name": "Ivan"}, {"name": "Mistral"}]}


def running(h, name):
    return [a for a in h.task(name).actions if a.state == "RUNNING"]


def test_with_items_simple_results_in_item_order_and_publish_over_them():
    """test_with_items_simple and test_with_items_results_order."""
    h = Harness(
        wf("""  input: [names_info]
  tasks:
    task1:
      with-items: name_info in <% $.names_info %>
      action: std.echo output=<% $.name_info.name %>
      publish:
        result: <% task(task1).result[0] %>
        all: <% task(task1).result %>
"""),
        NAMES,
    )
    h.start()
    t = h.task("task1")
    assert h.state == "SUCCESS" and t.state == "SUCCESS"
    assert t.result == ["John", "Ivan", "Mistral"]
    assert t.published == {"result": "John", "all": ["John", "Ivan", "Mistral"]}
    assert t.runtime_context["with_items"]["count"] == 3
    assert [a.index for a in t.actions] == [0, 1, 2]
    assert [a.input["output"] for a in t.actions] == ["John", "Ivan", "Mistral"]


def test_one_item_still_gives_a_list():
    """test_with_items_results_one_item_as_list."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: x in [7]
      action: std.echo output=<% $.x %>
""")
    )
    h.start()
    assert h.task("task1").result == [7]


def test_several_lists_are_zipped_and_a_static_var_is_seen():
    """test_with_items_multi_array and test_with_items_static_var."""
    h = Harness(
        wf("""  input: [arrayI, arrayJ, greeting]
  tasks:
    task1:
      with-items:
        - itemX in <% $.arrayI %>
        - itemY in <% $.arrayJ %>
      action: std.echo output="<% $.greeting %> <% $.itemX %> <% $.itemY %>"
"""),
        {"arrayI": ["a", "b", "c"], "arrayJ": [1, 2, 3], "greeting": "hi"},
    )
    h.start()
    assert h.task("task1").result == ["hi a 1", "hi b 2", "hi c 3"]


def test_lists_of_different_lengths_fail_the_task_and_the_workflow():
    h = Harness(
        wf("""  tasks:
    task1:
      with-items:
        - x in [1, 2]
        - y in [1]
      action: std.noop
""")
    )
    h.start()
    t = h.task("task1")
    assert t.state == "ERROR" and h.state == "ERROR"
    assert "All arrays must have the same length." in t.state_info
    assert t.state_info.startswith("Failed to run task [error=Wrong input format for: task1.with-items")


def test_a_failed_item_fails_the_task_after_every_item_ran_and_on_error_follows():
    """test_with_items_fail: std.fail over three items, on-error task2; the workflow succeeds."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2, 3]
      action: std.fail
      on-error: task2
    task2:
      action: std.echo output="With-items failed"
""")
    )
    h.start()
    t1 = h.task("task1")
    assert h.state == "SUCCESS" and len(h.snap.tasks) == 2
    assert t1.state == "ERROR" and t1.state_info == "One or more actions had failed."
    assert len(t1.actions) == 3 and all(a.state == "ERROR" for a in t1.actions)


def test_an_expression_that_fails_fails_the_task_with_an_empty_result():
    """test_with_items_yaql_fail."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in <% $.foobar %>
      action: std.noop
""")
    )
    h.start()
    t = h.task("task1")
    assert t.state == "ERROR" and h.state == "ERROR" and t.result == []


def test_a_value_that_is_not_a_list_fails_the_task_with_its_path_and_type():
    h = Harness(
        wf("""  input: [n]
  tasks:
    task1:
      with-items: i in <% $.n %>
      action: std.noop
"""),
        {"n": 5},
    )
    h.start()
    t = h.task("task1")
    assert t.state == "ERROR" and h.state == "ERROR"
    assert "task1.with-items.i: int 5. Iterable type is expected for each value." in t.state_info


def test_an_empty_list_succeeds_with_an_empty_result_and_goes_on():
    """test_with_items_empty_list."""
    h = Harness(
        wf("""  input: [names_info]
  tasks:
    task1:
      with-items: name_info in <% $.names_info %>
      action: std.echo output=<% $.name_info.name %>
      on-success: [task2]
    task2:
      action: std.echo output="Hi!"
"""),
        {"names_info": []},
    )
    h.start()
    assert h.state == "SUCCESS"
    assert h.task("task1").state == "SUCCESS" and h.task("task1").result == []
    assert h.task("task2").result == "Hi!"


def test_concurrency_1_runs_one_item_at_a_time():
    """test_with_items_concurrency_1: async actions, completed one by one."""
    h = Harness(
        wf("""  input:
    - names: ["John", "Ivan", "Mistral"]
  tasks:
    task1:
      action: std.async_noop
      with-items: name in <% $.names %>
      concurrency: 1
""")
    )
    h.start()
    for name in ["John", "Ivan", "Mistral"]:
        live = running(h, "task1")
        assert len(live) == 1
        h.send(engine.ActionCompleted(live[0].id, "SUCCESS", name))
    t = h.task("task1")
    assert h.state == "SUCCESS" and t.result == ["John", "Ivan", "Mistral"]
    assert t.runtime_context["concurrency"] == 1


def test_concurrency_2_keeps_two_running_and_results_follow_item_order_not_completion_order():
    """test_with_items_concurrency_2."""
    h = Harness(
        wf("""  input:
    - names: ["John", "Ivan", "Mistral", "Hello"]
  tasks:
    task1:
      action: std.async_noop
      with-items: name in <% $.names %>
      concurrency: 2
""")
    )
    h.start()
    first, second = running(h, "task1")
    h.send(engine.ActionCompleted(second.id, "SUCCESS", "Ivan"))
    assert len(running(h, "task1")) == 2
    h.send(engine.ActionCompleted(first.id, "SUCCESS", "John"))
    third, fourth = running(h, "task1")
    h.send(engine.ActionCompleted(fourth.id, "SUCCESS", "Hello"))
    assert h.task("task1").state == "RUNNING" and len(running(h, "task1")) == 1
    h.send(engine.ActionCompleted(third.id, "SUCCESS", "Mistral"))
    assert h.state == "SUCCESS"
    assert h.task("task1").result == ["John", "Ivan", "Mistral", "Hello"]


def test_concurrency_from_an_expression_and_a_wrong_type_fails_as_mistral():
    """test_with_items_concurrency_yaql and _wrong_type."""
    text = wf("""  input:
    - names: ["John", "Ivan", "Mistral"]
    - concurrency
  tasks:
    task1:
      action: std.echo output=<% $.name %>
      with-items: name in <% $.names %>
      concurrency: <% $.concurrency %>
""")
    h = Harness(text, {"concurrency": 2})
    h.start()
    assert h.state == "SUCCESS" and h.task("task1").result == ["John", "Ivan", "Mistral"]
    h = Harness(text, {"concurrency": "2"})
    h.start()
    assert h.task("task1").state == "ERROR" and h.state == "ERROR"
    assert "Invalid data type in ConcurrencyPolicy" in h.snap.state_info


def test_concurrency_above_the_list_length_runs_them_all():
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: name in ["John", "Ivan"]
      action: std.async_noop
      concurrency: 3
""")
    )
    h.start()
    assert len(running(h, "task1")) == 2


def test_a_failed_item_with_concurrency_still_runs_the_rest():
    """test_with_items_concurrency_2_fail."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2, 3, 4]
      action: std.async_noop
      concurrency: 2
      on-error: task2
    task2:
      action: std.echo output="With-items failed"
""")
    )
    h.start()
    a, b = running(h, "task1")
    h.send(engine.ActionCompleted(a.id, "ERROR", "boom"))
    assert len(running(h, "task1")) == 2  # the failure does not stop the next items
    for live in running(h, "task1"):
        h.send(engine.ActionCompleted(live.id, "SUCCESS", 1))
    for live in running(h, "task1"):
        h.send(engine.ActionCompleted(live.id, "SUCCESS", 2))
    assert h.task("task1").state == "ERROR" and h.task("task2").result == "With-items failed"
    assert h.state == "SUCCESS" and len(h.task("task1").actions) == 4


def test_retry_runs_every_item_again_and_only_the_last_round_counts():
    """test_with_items_retry_policy: 2 items, retry count 1 -> 4 action
    executions, 2 of them accepted; on-error follows after the retry."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2]
      action: std.fail
      retry:
        count: 1
        delay: 0
      on-error: task2
    task2:
      action: std.echo output="With-items failed"
""")
    )
    h.start()
    t1 = h.task("task1")
    assert h.state == "SUCCESS" and len(h.snap.tasks) == 2
    assert len(t1.actions) == 4
    assert [a.accepted for a in t1.actions] == [False, False, True, True]


def test_retry_with_concurrency_runs_each_round():
    """test_with_items_concurrency_retry_policy: count 2 -> 6 executions."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2]
      action: std.fail
      retry:
        count: 2
        delay: 0
      concurrency: 2
      on-error: task2
    task2:
      action: std.echo output="With-items failed"
""")
    )
    h.start()
    t1 = h.task("task1")
    assert len(t1.actions) == 6 and sum(a.accepted for a in t1.actions) == 2
    assert h.state == "SUCCESS"


def test_env_in_the_items_and_in_the_input():
    """test_with_items_env and test_with_items_env_in_with_items_expression."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in <% env().input_array %>
      action: std.echo output="<% $.i %>.<% env().name %>"
"""),
        params={"env": {"name": "Mistral", "input_array": ["1", "2", "33"]}},
    )
    h.start()
    assert h.task("task1").result == ["1.Mistral", "2.Mistral", "33.Mistral"]


def test_two_with_items_tasks_in_a_row():
    """test_with_items_two_tasks_second_starts_on_success."""
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2]
      action: std.echo output=<% $.i %>
      on-success: task2
    task2:
      with-items: i in [3, 4]
      action: std.echo output=<% $.i %>
""")
    )
    h.start()
    assert h.task("task1").result == [1, 2] and h.task("task2").result == [3, 4]


def test_a_workflow_cancel_cancels_the_running_items():
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2, 3]
      action: std.async_noop
""")
    )
    h.start()
    h.send(engine.Cancel("stop"))
    t = h.task("task1")
    assert h.state == "CANCELLED" and t.state == "CANCELLED"
    assert [a.state for a in t.actions] == ["CANCELLED"] * 3


def test_an_item_input_error_fails_the_task_and_the_workflow():
    h = Harness(
        wf("""  tasks:
    task1:
      with-items: i in [1, 2]
      action: std.echo output=<% $.i.nope %>
""")
    )
    h.start()
    t = h.task("task1")
    assert t.state == "ERROR" and h.state == "ERROR" and t.state_info.startswith("Failed to run task")


RERUN = wf("""  tasks:
    task1:
      with-items: i in [0, 1, 2, 3]
      action: std.async_noop
      concurrency: 2
      publish:
        got: <% task().result %>
""")


def _fail_items(h, failing):
    while running(h, "task1"):
        for a in running(h, "task1"):
            bad = a.index in failing
            h.send(engine.ActionCompleted(a.id, "ERROR" if bad else "SUCCESS", "boom" if bad else a.index * 10))


def test_rerun_with_reset_false_runs_only_the_failed_items_and_keeps_the_others_results():
    """Mistral's rerun with reset false (``mistral task-rerun --resume``;
    tasks.py _reset_actions and WithItemsTask._get_next_indexes): the
    failed items' executions are no longer accepted and only they run again,
    at the task's concurrency; the result is in item order."""
    h = Harness(RERUN)
    h.start()
    _fail_items(h, {1, 3})
    t1 = h.task("task1")
    assert (t1.state, h.state) == ("ERROR", "ERROR") and len(t1.actions) == 4
    d = h.send(engine.RerunTask(t1.id, reset=False))
    assert engine.InvalidateResults(t1.id, (t1.actions[1].id, t1.actions[3].id)) in d.commands
    again = running(h, "task1")
    assert [a.index for a in again] == [1, 3] and h.state == "RUNNING"
    assert [a.accepted for a in t1.actions[:4]] == [True, False, True, False]
    wi = t1.runtime_context["with_items"]
    assert (wi["done"], wi["running"], wi["errors"], wi["redo"]) == (2, 2, 0, [])
    for a in again:
        h.send(engine.ActionCompleted(a.id, "SUCCESS", a.index * 10))
    assert (t1.state, h.state) == ("SUCCESS", "SUCCESS")
    assert t1.result == [0, 10, 20, 30] and t1.published == {"got": [0, 10, 20, 30]}
    assert len(t1.actions) == 6


def test_rerun_with_reset_false_respects_concurrency_and_can_fail_again():
    h = Harness(RERUN.replace("concurrency: 2", "concurrency: 1"))
    h.start()
    _fail_items(h, {0, 2, 3})
    t1 = h.task("task1")
    h.send(engine.RerunTask(t1.id, reset=False))
    assert [a.index for a in running(h, "task1")] == [0]  # one at a time, as its concurrency says
    _fail_items(h, {3})
    assert t1.state == "ERROR" and t1.state_info == "One or more actions had failed."
    h.send(engine.RerunTask(t1.id, reset=False))
    assert [a.index for a in running(h, "task1")] == [3]
    _fail_items(h, set())
    assert t1.state == "SUCCESS" and t1.result == [0, 10, 20, 30] and len(t1.actions) == 8


def test_rerun_with_reset_true_runs_every_item_again():
    h = Harness(RERUN)
    h.start()
    _fail_items(h, {1})
    t1 = h.task("task1")
    h.send(engine.RerunTask(t1.id))
    assert [a.index for a in running(h, "task1")] == [0, 1]
    assert not any(a.accepted for a in t1.actions[:4])
    _fail_items(h, set())
    assert t1.state == "SUCCESS" and len(t1.actions) == 8
