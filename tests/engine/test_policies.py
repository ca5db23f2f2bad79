"""Task policies and Mistral's data flow, driven through the pure engine.
Scenarios follow what Mistral 23's engine tests check (test_policies.py,
test_retry*, test_task_defaults.py, test_commands.py, test_dataflow.py)."""

import pytest

from core import engine
from core.engine import StartTimer

from .helpers import Harness


def timers(decision):
    return [(c.kind, c.seconds) for c in decision.commands if isinstance(c, StartTimer)]


def fire(h, task_name, kind):
    return h.send(engine.TimerFired(h.task(task_name).id, kind))


def wf(body: str) -> str:
    return "version: '2.0'\nwf:\n" + body


def test_retry_runs_the_action_again_after_its_delay_and_each_attempt_is_a_new_action():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.fail
      retry: {count: 2, delay: 5}
""")
    )
    d = h.start()
    assert h.task("t").state == "RUNNING_DELAYED"
    assert h.task("t").state_info == "Delayed by 'retry' policy [delay=5]"
    assert timers(d) == [("retry", 5.0)]
    fire(h, "t", "retry")
    fire(h, "t", "retry")
    assert h.state == "ERROR" and h.task("t").state == "ERROR"
    assert len(h.task("t").actions) == 3  # the first run and two retries
    assert len(h.tasks("t")) == 1


def test_retry_without_delay_goes_on_in_the_same_step():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.fail
      retry: count=3 delay=0
""")
    )
    d = h.start()
    assert h.state == "ERROR" and len(h.task("t").actions) == 4 and timers(d) == []


def test_retry_break_on_stops_and_continue_on_repeats_a_success():
    h = Harness(
        wf("""  vars: {n: 0}
  tasks:
    brk:
      action: std.fail
      retry: {count: 5, delay: 0, break-on: <% true %>}
    cont:
      action: std.echo output=1
      publish: {n: <% $.n + 1 %>}
      retry: {count: 3, delay: 0, continue-on: <% $.n < 3 %>}
""")
    )
    h.start()
    assert len(h.task("brk").actions) == 1
    # Each retry sees the same inbound context, so n is 1 each time and
    # continue-on holds until the count is used up: the first run and 3 more.
    assert h.task("cont").state == "SUCCESS" and len(h.task("cont").actions) == 4


def test_wait_before_delays_the_action_on_a_timer():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.echo output=x
      wait-before: 2
""")
    )
    d = h.start()
    assert h.task("t").state == "RUNNING_DELAYED" and h.task("t").actions == []
    assert timers(d) == [("wait-before", 2.0)]
    fire(h, "t", "wait-before")
    assert h.state == "SUCCESS"


def test_wait_after_delays_the_transitions():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.noop
      wait-after: 3
      on-success: [next]
    next: {}
""")
    )
    h.start()
    assert h.task("t").state == "RUNNING_DELAYED" and h.tasks("next") == []
    fire(h, "t", "wait-after")
    assert h.task("t").state == "SUCCESS" and h.state == "SUCCESS"


def test_timeout_fails_the_task_and_its_action_and_on_error_runs():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.async_noop
      timeout: 10
      on-error: [handle]
    handle: {}
""")
    )
    d = h.start()
    assert ("timeout", 10.0) in timers(d)
    action = h.running_action("t")
    fire(h, "t", "timeout")
    assert h.task("t").state == "ERROR" and h.task("t").state_info == "Task timed out [timeout(s)=10]."
    assert action.state == "ERROR"
    assert h.task("handle").state == "SUCCESS" and h.state == "SUCCESS"
    with pytest.raises(engine.Conflict):  # the late result of the timed-out action
        h.send(engine.ActionCompleted(action.id, "SUCCESS", 1))


def test_a_timer_of_a_finished_task_is_a_no_op():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.async_noop
      timeout: 10
""")
    )
    h.start()
    h.complete("t", {"ok": 1})
    d = fire(h, "t", "timeout")
    assert h.state == "SUCCESS" and d.changed_tasks == {} and not d.workflow_changed


def test_pause_before_pauses_the_workflow_and_resume_runs_the_task():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.noop
      pause-before: true
""")
    )
    h.start()
    assert h.state == "PAUSED" and h.task("t").state == "IDLE"
    assert h.task("t").state_info == "Set by 'pause-before' policy"
    h.send(engine.Resume())
    assert h.state == "SUCCESS"


def test_fail_on_fails_a_successful_task():
    h = Harness(
        wf("""  tasks:
    t:
      action: std.echo output=3
      fail-on: <% task().result > 2 %>
""")
    )
    h.start()
    assert h.task("t").state == "ERROR" and h.task("t").state_info == "Failed by 'fail-on' policy"
    assert h.state == "ERROR"


def test_task_defaults_give_policies_and_transitions_to_tasks_without_their_own():
    h = Harness(
        wf("""  task-defaults:
    retry: {count: 1, delay: 0}
    on-error: [cleanup]
  tasks:
    a:
      action: std.fail
    cleanup:
      action: std.noop
""")
    )
    h.start()
    assert len(h.task("a").actions) == 2  # retried once by the default
    assert h.task("cleanup").state == "SUCCESS" and h.state == "SUCCESS"


def test_a_policy_value_of_the_wrong_type_fails_the_task_with_the_reason():
    h = Harness(
        wf(
            """  input: [d]
  tasks:
    t:
      action: std.noop
      timeout: <% $.d %>
""",
        ),
        {"d": "soon"},
    )
    h.start()
    assert h.task("t").state == "ERROR" and h.state == "ERROR"
    assert h.task("t").state_info == (
        "Failed to run task [error=Invalid data type in TimeoutPolicy: the 'timeout' value 'soon' is not a number "
        "of seconds >= 0. Value(s) can be shown after YAQL evaluating. If you use YAQL here, please correct it., "
        "wf=wf, task=t]:"
    )
    assert h.snap.state_info == h.task("t").state_info


def test_commands_after_fail_are_dropped_tasks_before_it_still_run():
    h = Harness("""version: '2.0'
wf:
  tasks:
    task1:
      action: std.echo output=1
      on-complete: [task2, fail]
    task2:
      action: std.async_noop
""")
    h.start()
    assert h.state == "ERROR" and h.task("task2").state == "RUNNING"
    h.complete("task2", {})
    assert h.task("task2").state == "SUCCESS" and h.state == "ERROR"


def test_pause_command_keeps_the_later_transitions_for_resume():
    h = Harness("""version: '2.0'
wf:
  tasks:
    task1:
      action: std.echo output=1
      on-complete: [pause, task2]
    task2:
      action: std.echo output=2
""")
    h.start()
    assert h.state == "PAUSED" and h.tasks("task2") == []
    h.send(engine.Resume())
    assert h.task("task2").state == "SUCCESS" and h.state == "SUCCESS"


def test_succeed_msg_is_evaluated_into_state_info():
    h = Harness(
        """version: '2.0'
wf:
  input: [v]
  tasks:
    t:
      action: std.noop
      on-complete:
        - succeed(msg='value is <% $.v %>')
""",
        {"v": 2},
    )
    h.start()
    assert h.state == "SUCCESS" and h.snap.state_info == "value is 2"


def test_without_output_the_workflow_outputs_what_its_branches_published():
    h = Harness("""version: '2.0'
wf:
  tasks:
    t1:
      action: std.echo output=Hi
      publish: {hi: <% task().result %>}
      on-success: [t2]
    t2:
      action: std.echo output=Morpheus
      publish: {to: <% task().result %>}
""")
    h.start()
    assert h.snap.output == {"hi": "Hi", "to": "Morpheus"}


def test_a_failed_workflow_output_holds_the_failure_message():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.fail\n")
    h.start()
    assert h.state == "ERROR" and h.snap.output["result"] == h.snap.state_info


def test_variables_published_in_one_branch_do_not_leak_into_a_parallel_one():
    h = Harness("""version: '2.0'
wf:
  vars: {x: start}
  tasks:
    a:
      action: std.noop
      publish: {x: from_a}
      on-success: [a2]
    a2:
      action: std.noop
      publish: {seen_by_a2: <% $.x %>}
    b:
      action: std.noop
      on-success: [b2]
    b2:
      action: std.noop
      publish: {seen_by_b2: <% $.x %>}
""")
    h.start()
    assert h.task("a2").published == {"seen_by_a2": "from_a"}
    assert h.task("b2").published == {"seen_by_b2": "start"}


def test_global_publish_is_seen_everywhere_and_by_global():
    h = Harness("""version: '2.0'
wf:
  tasks:
    a:
      action: std.noop
      on-success:
        publish:
          global: {g: 1}
          branch: {b: 2}
        next: [c]
    c:
      action: std.noop
      publish:
        both: <% [$.g, $.b] %>
""")
    h.start()
    assert h.snap.context == {"g": 1}
    assert h.task("c").published == {"both": [1, 2]}


def test_a_join_merges_the_contexts_of_its_branches():
    h = Harness("""version: '2.0'
wf:
  tasks:
    a:
      publish: {x: 1}
      on-success: [j]
    b:
      publish: {y: 2}
      on-success: [j]
    j:
      join: all
      publish: {sum: <% $.x + $.y %>}
""")
    h.start()
    assert h.task("j").published == {"sum": 3}


def test_action_and_input_as_expressions_and_an_unknown_action_fails_at_run_time():
    h = Harness(
        """version: '2.0'
wf:
  input: [name, params]
  tasks:
    t:
      action: <% $.name %>
      input: <% $.params %>
""",
        {"name": "std.echo", "params": {"output": "dyn"}},
    )
    h.start()
    assert h.task("t").result == "dyn"
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: no.such_action\n")
    h.start()
    info = "Failed to run task [error=Failed to find action [action_name=no.such_action, namespace=], wf=wf, task=t]:"
    assert h.task("t").state_info == info and h.snap.state_info == info  # the workflow fails with it, as Mistral


def test_a_result_while_paused_is_stored_and_the_next_task_waits_for_resume():
    h = Harness("""version: '2.0'
wf:
  tasks:
    w:
      action: std.async_noop
      on-success: [next]
    next: {}
""")
    h.start()
    h.send(engine.Pause())
    h.complete("w", {"r": 1})
    assert h.task("w").result == {"r": 1} and h.tasks("next") == []
    h.send(engine.Resume())
    assert h.state == "SUCCESS"


def test_all_start_tasks_start_even_if_one_pauses_the_workflow():
    h = Harness("""version: '2.0'
wf:
  tasks:
    p:
      action: std.noop
      on-complete: [pause]
    q:
      action: std.async_noop
""")
    h.start()
    assert h.state == "PAUSED" and h.task("q").state == "RUNNING"


def test_on_skip_runs_when_an_operator_skips_a_failed_task():
    h = Harness("""version: '2.0'
wf:
  tasks:
    t:
      action: std.fail
      publish-on-skip: {skipped: true}
      on-skip: [after_skip]
      on-success: [never]
    after_skip: {}
    never: {}
""")
    h.start()
    assert h.state == "ERROR"
    h.send(engine.SkipTask(h.task("t").id))
    assert h.task("t").published == {"skipped": True}
    assert h.task("after_skip").state == "SUCCESS" and h.tasks("never") == []
    assert h.state == "SUCCESS"
