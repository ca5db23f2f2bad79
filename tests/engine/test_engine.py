"""Scenarios for the pure engine: no database, milliseconds each."""

import pytest

from core import engine

from .helpers import Harness

SEQ = """
version: '2.0'
seq:
  input: [name]
  output:
    greeting: <% $.greeting %>
  tasks:
    hello:
      action: std.echo output=<% 'hello ' + $.name %>
      publish:
        greeting: <% task().result %>
      on-success: [done]
    done:
      action: std.noop
"""


def test_a_sequence_of_local_actions_finishes_in_one_step():
    h = Harness(SEQ, {"name": "gust"})
    d = h.start()
    assert h.state == "SUCCESS"
    assert h.snap.output == {"greeting": "hello gust"}
    assert [t.name for t in d.new_tasks] == ["hello", "done"]
    assert all(t.state == "SUCCESS" for t in h.snap.tasks)
    assert d.dispatch == []
    assert h.trace() == [
        ("WORKFLOW_LAUNCHED", None),
        ("TASK_RUNNING", "hello"),
        ("TASK_SUCCEEDED", "hello"),
        ("TASK_RUNNING", "done"),
        ("TASK_SUCCEEDED", "done"),
        ("WORKFLOW_SUCCEEDED", None),
    ]


def test_a_conflict_changes_nothing():
    h = Harness(SEQ, {"name": "x"})
    h.start()
    tasks = [(t.id, t.state, t.processed) for t in h.snap.tasks]
    with pytest.raises(engine.Conflict):
        h.send(engine.Start())
    assert [(t.id, t.state, t.processed) for t in h.snap.tasks] == tasks and h.state == "SUCCESS"


def test_an_async_action_waits_until_completed_and_its_result_is_published():
    h = Harness("""
version: '2.0'
wf:
  output: {got: <% $.got %>}
  tasks:
    wait:
      action: std.async_noop
      publish: {got: <% task().result.value %>}
""")
    h.start()
    assert h.state == "RUNNING"
    assert h.task("wait").state == "RUNNING"
    action = h.running_action("wait")
    assert action.is_sync is False
    h.complete("wait", {"value": 3})
    assert h.state == "SUCCESS"
    assert h.snap.output == {"got": 3}
    assert h.task("wait").result == {"value": 3}
    assert h.task("wait").actions[0].output == {"result": {"value": 3}}


def test_completing_an_action_twice_is_a_conflict_and_changes_nothing():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    w:\n      action: std.async_noop\n")
    h.start()
    action_id = h.running_action("w").id
    h.complete("w", {"a": 1})
    with pytest.raises(engine.Conflict) as err:
        h.send(engine.ActionCompleted(action_id, "SUCCESS", {"a": 2}))
    assert err.value.state == "SUCCESS"
    assert h.task("w").result == {"a": 1}


def test_io_actions_are_dispatched_to_a_worker():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    get:\n      action: std.http url=http://127.0.0.1:1/x\n")
    d = h.start()
    assert d.dispatch == [h.running_action("get").id]
    assert h.running_action("get").input["method"] == "GET"


def test_an_unhandled_error_fails_the_workflow_with_the_task_named():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    boom:
      action: std.fail error_data="disk full"
      on-success: [never]
    never:
      action: std.noop
""")
    h.start()
    assert h.state == "ERROR"
    assert "boom" in h.snap.state_info and "disk full" in h.snap.state_info
    assert h.tasks("never") == []


def test_on_error_handles_the_error_and_publish_on_error_runs():
    h = Harness("""
version: '2.0'
wf:
  output: {why: <% $.why %>}
  tasks:
    boom:
      action: std.fail error_data=bad
      publish-on-error: {why: <% task().result %>}
      on-error: [recover]
    recover:
      action: std.noop
""")
    h.start()
    assert h.state == "SUCCESS"
    assert h.snap.output == {"why": "bad"}
    assert h.task("recover").state == "SUCCESS"


def test_on_complete_runs_either_way_but_does_not_handle_errors():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    boom:
      action: std.fail
      on-complete: [cleanup]
    cleanup:
      action: std.noop
""")
    h.start()
    assert h.task("cleanup").state == "SUCCESS"
    assert h.state == "ERROR"


def test_guarded_transitions_pick_the_branch_whose_condition_holds():
    h = Harness(
        """
version: '2.0'
wf:
  input: [n]
  tasks:
    check:
      action: std.noop
      on-success:
        - big: <% $.n > 10 %>
        - small: "{{ _.n <= 10 }}"
    big:
      action: std.noop
    small:
      action: std.noop
""",
        {"n": 3},
    )
    h.start()
    assert h.state == "SUCCESS"
    assert h.tasks("big") == [] and h.task("small").state == "SUCCESS"


JOIN_ALL = """
version: '2.0'
wf:
  tasks:
    a:
      action: std.noop
      on-success: [j]
    b:
      action: std.async_noop
      on-success: [j]
    j:
      join: all
      action: std.echo output=joined
"""


def test_join_all_waits_for_every_branch():
    h = Harness(JOIN_ALL)
    h.start()
    assert h.task("j").state == "WAITING"
    assert h.state == "RUNNING"
    h.complete("b", {})
    assert h.task("j").state == "SUCCESS"
    assert len(h.tasks("j")) == 1
    assert h.state == "SUCCESS"


def test_join_one_runs_once_for_the_first_arrival():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    a:
      action: std.noop
      on-success: [j]
    b:
      action: std.noop
      on-success: [j]
    j:
      join: one
      action: std.noop
""")
    h.start()
    assert h.state == "SUCCESS"
    assert len(h.tasks("j")) == 1


def test_join_that_can_never_be_satisfied_fails():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    a:
      action: std.noop
      on-success:
        - j: <% false %>
    b:
      action: std.noop
      on-success: [j]
    j:
      join: all
      action: std.noop
""")
    h.start()
    assert h.task("j").state == "ERROR"
    assert h.state == "ERROR"


def test_fan_out_of_many_tasks_joined():
    branches = "\n".join(f"    b{i}:\n      action: std.noop\n      on-success: [j]" for i in range(100))
    h = Harness(f"version: '2.0'\nwf:\n  tasks:\n{branches}\n    j:\n      join: all\n      action: std.noop\n")
    h.start()
    assert h.state == "SUCCESS"
    assert len(h.snap.tasks) == 101


@pytest.mark.parametrize(
    "command,state,info",
    [("fail msg='stop here'", "ERROR", "stop here"), ("succeed", "SUCCESS", None), ("pause", "PAUSED", None)],
)
def test_engine_commands_end_or_pause_the_workflow(command, state, info):
    h = Harness(f"""
version: '2.0'
wf:
  tasks:
    other:
      action: std.async_noop
    a:
      action: std.noop
      on-success:
        - {command}
""")
    h.start()
    assert h.state == state
    assert h.snap.state_info == info
    if state in ("ERROR", "SUCCESS"):
        # Mistral does not cancel what still runs: it finishes, and nothing follows it.
        assert h.task("other").state == "RUNNING"
        h.complete("other", {})
        assert h.task("other").state == "SUCCESS" and h.state == state


def test_pause_holds_new_tasks_until_resume():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    w:
      action: std.async_noop
      on-success: [next]
    next:
      action: std.noop
""")
    h.start()
    h.send(engine.Pause())
    h.complete("w", {})
    # As in Mistral: the result is stored, the task ends, and what follows
    # it is decided only on resume.
    assert h.task("w").state == "SUCCESS" and not h.task("w").processed
    assert h.tasks("next") == []
    assert h.state == "PAUSED"
    h.send(engine.Resume())
    assert h.task("next").state == "SUCCESS"
    assert h.state == "SUCCESS"
    kinds = [k for k, _ in h.trace()]
    assert "WORKFLOW_PAUSED" in kinds and "WORKFLOW_RESUMED" in kinds


def test_cancel_stops_running_tasks_and_refuses_later_results():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    w:\n      action: std.async_noop\n")
    h.start()
    action_id = h.running_action("w").id
    h.send(engine.Cancel())
    assert h.state == "CANCELLED"
    assert h.task("w").state == "CANCELLED"
    with pytest.raises(engine.Conflict):
        h.send(engine.ActionCompleted(action_id, "SUCCESS", {}))


def test_a_bad_expression_at_run_time_fails_the_task_with_the_reason():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.echo output=<% $.missing %>\n")
    h.start()
    assert h.task("t").state == "ERROR"
    assert "missing" in h.task("t").state_info
    assert h.state == "ERROR"


def test_task_function_reads_other_tasks_and_execution_input():
    h = Harness(
        """
version: '2.0'
wf:
  input: [x]
  output:
    a: <% task(first).result %>
    b: "{{ task('first').result }}-{{ execution().input.x }}"
    c: <% execution().input.x %>
  tasks:
    first:
      action: std.echo output=<% $.x * 2 %>
""",
        {"x": 21},
    )
    h.start()
    assert h.snap.output == {"a": 42, "b": "42-21", "c": 21}


def test_keep_result_false_drops_the_result_but_publishes():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.echo output=big
      keep-result: false
      publish: {p: <% task().result %>}
""")
    h.start()
    assert h.task("t").result is None
    assert h.task("t").published == {"p": "big"} and h.snap.output == {"p": "big"}


def test_loops_create_a_new_task_execution_each_time():
    h = Harness("""
version: '2.0'
wf:
  vars: {n: 0}
  tasks:
    init:
      action: std.noop
      on-success: [step]
    step:
      action: std.echo output=<% $.n + 1 %>
      publish: {n: <% task().result %>}
      on-success:
        - step: <% $.n < 3 %>
""")
    h.start()
    assert h.state == "SUCCESS"
    assert [t.result for t in h.tasks("step")] == [1, 2, 3]


def test_workflow_input_check_reports_missing_and_unexpected():
    h = Harness(SEQ)
    values, errors = engine.check_input(h.spec, {"nme": "typo"})
    assert errors == {"nme": "unexpected input 'nme'", "name": "missing required input 'name'"}


def test_a_join_completed_while_paused_runs_on_resume():
    h = Harness(JOIN_ALL)
    h.start()
    h.send(engine.Pause())
    h.complete("b", {})
    assert h.task("j").state == "WAITING"
    h.send(engine.Resume())
    assert h.task("j").state == "SUCCESS"
    assert h.state == "SUCCESS"


def test_jinja_task_without_a_name_is_the_current_task():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.echo output=7
      on-success:
        - big: "{{ task().result > 5 }}"
    big:
      action: std.noop
""")
    h.start()
    assert h.state == "SUCCESS"
    assert h.task("big").state == "SUCCESS"


def test_an_operator_reruns_a_failed_task_and_the_workflow_goes_on():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    flaky:
      action: std.async_noop
      on-success: [after]
    after:
      action: std.noop
""")
    h.start()
    h.complete("flaky", "boom", state="ERROR")
    assert h.state == "ERROR"
    failed = h.task("flaky")
    h.send(engine.RerunTask(failed.id))
    assert h.state == "RUNNING"
    assert h.task("flaky").state == "RUNNING" and len(h.task("flaky").actions) == 2
    h.complete("flaky", {"ok": 1})
    assert h.state == "SUCCESS"
    assert h.task("after").state == "SUCCESS"
    assert ("TASK_RERUN", "flaky") in h.trace() and ("WORKFLOW_RERUN", None) in h.trace()


def test_an_operator_skips_a_failed_task_and_its_on_success_path_runs():
    h = Harness("""
version: '2.0'
wf:
  tasks:
    bad:
      action: std.fail
      on-success: [after]
    after:
      action: std.noop
""")
    h.start()
    assert h.state == "ERROR"
    h.send(engine.SkipTask(h.task("bad").id))
    assert h.task("bad").state == "SKIPPED"
    assert h.task("after").state == "SUCCESS"
    assert h.state == "SUCCESS"


def test_only_failed_tasks_can_be_rerun_or_skipped():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t: {action: std.noop}\n")
    h.start()
    for event in (engine.RerunTask(h.task("t").id), engine.SkipTask(h.task("t").id)):
        with pytest.raises(engine.Conflict) as err:
            h.send(event)
        assert err.value.state == "SUCCESS"


def test_a_join_stored_with_the_names_of_its_arrivals_goes_on_as_before():
    """Rows written before the arrivals bit mask hold a list of names."""
    h = Harness("""
version: '2.0'
wf:
  tasks:
    a:
      on-success: [j]
    b:
      action: std.async_noop
      on-success: [j]
    j:
      join: all
""")
    h.start()
    j = h.task("j")
    j.runtime_context = {"arrived": ["a"]}  # as an older Gust stored it
    h.complete("b", {})
    assert h.task("j").state == "SUCCESS" and len(h.tasks("j")) == 1 and h.state == "SUCCESS"
