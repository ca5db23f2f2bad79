"""Bounds on what a workflow controls, in the pure core: expression time and
size, the engine's steps per call, stored sizes, and YAML documents."""

import time

import pytest

from core import engine
from core.lang import spec as lang
from core.lang.expressions import ExprContext, ExpressionError, evaluate
from core.lang.limits import Limits

from .helpers import Harness

# A loop of engine-local steps that ends after `until` rounds.
COUNTED = """
version: '2.0'
counted:
  input: [{until: 120}]
  vars: {n: 0}
  output: {n: <% $.n %>}
  tasks:
    start:
      action: std.noop
      on-success: [t1]
    t1:
      action: std.noop
      publish: {n: <% $.n + 1 %>}
      on-success:
        - t1: <% $.n < $.until %>
"""

LOOP = """
version: '2.0'
loop:
  tasks:
    start:
      action: std.noop
      on-success: [t1]
    t1:
      action: std.noop
      on-success: [t1]
"""


def run(harness: Harness, event, limits: Limits) -> engine.Decision:
    d = engine.handle(harness.spec, harness.snap, event, harness.make_id, limits)
    harness.snap = d.snapshot
    return d


# --- the engine's steps ------------------------------------------------------


def test_an_endless_local_loop_stops_after_the_step_limit_and_continues_on_request():
    h, limits = Harness(LOOP), Limits(engine_steps=25)
    first = run(h, engine.Start(), limits)
    assert first.more and h.state == "RUNNING"
    assert len(first.new_actions) == 25  # 25 tasks started; the 26th waits, IDLE
    assert [t.state for t in first.new_tasks][-1] == "IDLE"

    second = run(h, engine.Continue(), limits)
    assert second.more and len(second.new_actions) == 25
    assert h.snap.tasks[-1].seq == 50 and h.snap.runtime["seq"] == 51


def test_a_slow_loop_stops_after_the_time_budget_of_one_call_but_always_makes_a_step():
    h, ticks = Harness(LOOP), iter(range(0, 1000, 3))  # every step "takes" 3 s
    d = engine.handle(h.spec, h.snap, engine.Start(), h.make_id, Limits(engine_seconds=5), clock=lambda: next(ticks))
    assert d.more and len(d.new_actions) == 2
    ticks = iter(range(0, 1000, 30))
    d = engine.handle(
        h.spec, d.snapshot, engine.Continue(), h.make_id, Limits(engine_seconds=5), clock=lambda: next(ticks)
    )
    assert d.more and len(d.new_actions) == 1


def test_a_loop_cancelled_between_steps_stops_and_continue_then_does_nothing():
    h, limits = Harness(LOOP), Limits(engine_steps=10)
    run(h, engine.Start(), limits)
    run(h, engine.Cancel(), limits)
    assert h.state == "CANCELLED"
    assert all(t.state in ("SUCCESS", "CANCELLED") for t in h.snap.tasks)
    after = run(h, engine.Continue(), limits)
    assert not after.more and after.new_tasks == [] and h.state == "CANCELLED"


def test_a_counted_loop_finishes_across_continuations_with_the_same_result():
    h, limits = Harness(COUNTED, {"until": 60}), Limits(engine_steps=25)
    decisions = [run(h, engine.Start(), limits)]
    while decisions[-1].more:
        decisions.append(run(h, engine.Continue(), limits))
    assert h.state == "SUCCESS" and h.snap.output == {"n": 60}
    assert len(decisions) == 3


# --- stored sizes ------------------------------------------------------------


def test_publishing_more_than_the_field_size_limit_fails_the_task_with_the_reason():
    h = Harness("""
version: '2.0'
big:
  tasks:
    t1:
      action: std.noop
      publish: {blob: <% range(3000).select(str($)) %>}
""")
    run(h, engine.Start(), Limits(field_size_kb=8))
    assert h.state == "ERROR"
    assert h.task("t1").state == "ERROR"
    assert "larger than the size limit of 8 KB" in h.task("t1").state_info
    assert h.snap.context == {}


def test_an_action_result_over_the_limit_is_not_stored_and_fails_the_task():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.async_noop\n")
    run(h, engine.Start(), Limits(field_size_kb=1))
    action = h.running_action("t1")
    run(h, engine.ActionCompleted(action.id, "SUCCESS", "x" * 5000), Limits(field_size_kb=1))
    assert h.task("t1").state == "ERROR" and h.state == "ERROR"
    assert "can not be stored" in h.task("t1").state_info
    assert len(str(h.task("t1").result)) < 500


def test_an_expression_result_that_is_not_json_fails_the_task_instead_of_the_transaction():
    h = Harness("version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.echo output=<% float('nan') %>\n")
    h.start()
    assert h.task("t1").state == "ERROR"
    assert "nan is not a JSON number" in h.task("t1").state_info


# --- expressions -------------------------------------------------------------


def evaluate_with(text: str, **limits):
    return evaluate(text, ExprContext(data={}, limits=Limits(**limits)))


@pytest.mark.parametrize(
    "expr",
    [
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "<% range(3000).select(range(3000).sum()).sum() %>",
    ],
)
def test_an_expression_that_runs_too_long_is_stopped_with_a_clear_error(expr):
    with pytest.raises(ExpressionError, match=r"took longer than 0.2 s \(the expression time limit\)"):
        evaluate_with(expr, expression_seconds=0.2)


@pytest.mark.parametrize(
    "expr",
    [
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000000 }}",
        "{{ '%0999999999d' % 1 }}",
        "{% for i in range(10000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
        "<% 'a' * 100000000 %>",
    ],
)
def test_an_expression_building_a_huge_value_is_refused(expr):
    with pytest.raises(ExpressionError, match="size limit|too much memory"):
        evaluate_with(expr, field_size_kb=64)


def test_jinja_range_is_capped():
    with pytest.raises(ExpressionError, match="longer than 100 \\(the Jinja range limit\\)"):
        evaluate_with("{{ range(101) | list }}", jinja_max_range=100)
    assert evaluate_with("{{ range(100) | list | length }}", jinja_max_range=100) == 100


def test_results_become_json_or_a_precise_error():
    assert evaluate_with("<% set(1, 2) %>") == [1, 2]
    assert evaluate_with("{{ (1, 2) }}") == [1, 2]
    with pytest.raises(ExpressionError, match="nan is not a JSON number"):
        evaluate_with("<% float('nan') %>")
    with pytest.raises(ExpressionError, match="a function is not a JSON value"):
        evaluate_with("{{ range }}")


# --- YAML --------------------------------------------------------------------


def laughs(levels: int = 9) -> str:
    lines = ["    l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        ref = f"*l{i - 1}"
        lines.append(f"    l{i}: &l{i} [{', '.join([ref] * 9)}]")
    return "version: '2.0'\nwf:\n  vars:\n" + "\n".join(lines) + "\n  tasks:\n    t1: {action: std.noop}\n"


def parse_error(text: str, **limits) -> str:
    with pytest.raises(lang.DefinitionError) as exc:
        lang.parse_definition(text, Limits(**limits))
    return exc.value.message


def test_a_yaml_alias_bomb_is_refused_before_it_expands():
    text = laughs()
    assert len(text) < 600
    started = time.process_time()
    message = parse_error(text)
    assert "aliases expand to more than 10000 values" in message
    assert time.process_time() - started < 1  # 9**9 values if it expanded


def test_aliases_that_nest_past_the_depth_limit_are_refused():
    inner, outer = "[" * 60 + "]" * 60, "[" * 60 + "*a" + "]" * 60
    text = f"version: '2.0'\nwf:\n  vars:\n    a: &a {inner}\n    b: {outer}\n  tasks:\n    t1: {{action: std.noop}}\n"
    assert "aliases nest deeper than 100 levels" in parse_error(text)


def test_a_few_aliases_are_fine():
    specs = lang.parse_definition(laughs(levels=3))
    assert len(specs["wf"].vars["l2"]) == 9


def test_yaml_nested_deeper_than_the_limit_is_refused_with_its_line():
    deep = (
        "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n      input: {x: "
        + "[" * 2000
        + "]" * 2000
        + "}\n"
    )
    assert "line 6" in parse_error(deep) and "nested deeper than 100 levels" in parse_error(deep)


def test_an_inline_action_parameter_nested_too_deep_for_json_is_an_invalid_definition_not_a_crash():
    deep = "[" * 5000 + "]" * 5000
    assert "wf.tasks.t1.action: can not parse action parameters" in parse_error(
        f"version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.echo output={deep}\n"
    )


def test_a_definition_over_the_size_limit_is_refused():
    text = "version: '2.0'\nwf:\n  description: " + "x" * 3000 + "\n  tasks:\n    t1: {action: std.noop}\n"
    assert "larger than the limit of 2 KB" in parse_error(text, definition_kb=2)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2026-01-01", "line 3, column 13: a date ('2026-01-01') has no JSON type; quote it"),
        ("!!binary aGVsbG8=", "!!binary data ('aGVsbG8=') has no JSON type"),
        ("!!set {a, b}", "a !!set has no JSON type; use a list"),
        (".nan", "wf.vars.d: nan is not a JSON number"),
        ('"a\\0b"', "wf.vars.d: contains a NUL character"),
    ],
)
def test_yaml_values_json_can_not_hold_are_refused_with_where_they_are(value, expected):
    text = f"version: '2.0'\nwf:\n  vars: {{d: {value}}}\n  tasks:\n    t1: {{action: std.noop}}\n"
    assert expected in parse_error(text)


def test_yaml_keys_that_are_not_strings_are_refused():
    assert "wf.vars: key 1 is not a string" in parse_error(
        "version: '2.0'\nwf:\n  vars: {1: x}\n  tasks:\n    t1: {action: std.noop}\n"
    )
