"""Reverse workflows, from Mistral 23's test_reverse_workflow.py and its
ReverseWorkflowController: run what the target task requires, then it."""

import pytest

from core.lang.spec import DefinitionError, parse_definition
from tests.engine.helpers import Harness

WB = """version: '2.0'
wf1:
  type: reverse
  input: [param1, param2]
  tasks:
    task1:
      action: std.echo output=<% $.param1 %>
      publish:
        result1: <% task(task1).result %>
    task2:
      action: std.echo output="<% $.result1 %> & <% $.param2 %>"
      publish:
        result2: <% task(task2).result %>
      requires: [task1]
    task3:
      action: std.noop
    task4:
      action: std.noop
      requires: task3
"""


def test_start_task1_runs_only_task1():
    """test_start_task1."""
    h = Harness(WB, {"param1": "a", "param2": "b"}, {"task_name": "task1"})
    h.start()
    assert h.state == "SUCCESS"
    assert [t.name for t in h.snap.tasks] == ["task1"]
    assert h.task("task1").published == {"result1": "a"}


def test_start_task2_runs_what_it_requires_first():
    """test_start_task2: task1 then task2; task3 and task4 do not run."""
    h = Harness(WB, {"param1": "a", "param2": "b"}, {"task_name": "task2"})
    h.start()
    assert h.state == "SUCCESS"
    assert [t.name for t in h.snap.tasks] == ["task1", "task2"]
    assert h.task("task2").result == "a & b"
    assert h.snap.output == {"result1": "a", "result2": "a & b"}


def test_a_task_waits_for_all_it_requires_and_a_failure_fails_the_workflow():
    text = """version: '2.0'
wf:
  type: reverse
  task-defaults:
    requires: [a]
  tasks:
    a: {action: std.noop}
    b: {action: std.async_noop}
    c: {action: std.noop, requires: [a, b]}
"""
    h = Harness(text, params={"task_name": "c"})
    h.start()
    assert sorted(t.name for t in h.snap.tasks) == ["a", "b"] and h.state == "RUNNING"
    h.complete("b", "x")
    assert h.task("c").state == "SUCCESS" and h.state == "SUCCESS"
    h = Harness(text, params={"task_name": "c"})
    h.start()
    h.complete("b", "boom", state="ERROR")
    assert h.state == "ERROR" and [t.name for t in h.snap.tasks] == ["a", "b"]
    assert h.snap.state_info.startswith("Failure caused by error in tasks: b")


def errors(text):
    with pytest.raises(DefinitionError) as exc:
        parse_definition(text)
    return exc.value.errors


def test_a_cycle_or_an_unknown_required_task_is_refused_at_upload():
    errs = errors("""version: '2.0'
wf:
  type: reverse
  tasks:
    a: {action: std.noop, requires: [b]}
    b: {action: std.noop, requires: a}
    c: {action: std.noop, requires: [nope]}
""")
    assert ("wf.tasks.c.requires", "unknown task 'nope'") in errs
    assert any(p in ("wf.tasks.a.requires", "wf.tasks.b.requires") and "a cycle in 'requires'" in m for p, m in errs)


def test_transitions_are_not_allowed_in_a_reverse_workflow_nor_requires_in_a_direct_one():
    errs = errors(
        "version: '2.0'\nwf:\n  type: reverse\n  tasks:\n    a: {action: std.noop, on-success: b}\n"
        "    b: {action: std.noop}\n"
    )
    assert ("wf.tasks.a.on-success", "not allowed in a reverse workflow (use 'requires')") in errs
    errs = errors(
        "version: '2.0'\nwf:\n  tasks:\n    a: {action: std.noop, requires: [b]}\n    b: {action: std.noop}\n"
    )
    assert ("wf.tasks.a.requires", "only a reverse workflow has 'requires'") in errs


def test_an_unknown_target_is_refused():
    with pytest.raises(DefinitionError, match=r"Invalid task name \[wf_spec=wf1, task_name=nope\]"):
        Harness(WB, params={"task_name": "nope"})
