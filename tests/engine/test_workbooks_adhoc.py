"""Workbooks and ad-hoc actions in the pure language and engine: no database.

Scenarios from Mistral's tests/unit/engine/test_adhoc_actions.py (its WB
workbook is used as it is), tests/unit/lang/v2/test_workbook.py and
mistral/actions/adhoc.py."""

import itertools

import pytest

from core import adhoc, engine
from core.lang import spec as lang
from core.lang.workbook import parse_actions, parse_workbook

# Mistral's test_adhoc_actions.py WB, whole.
WB = """
version: '2.0'
name: my_wb
actions:
  concat_twice:
    base: std.echo
    base-input:
      output: "<% $.s1 %>+<% $.s2 %>"
    input:
      - s1: "a"
      - s2
    output: "<% $ %> and <% $ %>"
  test_env:
    base: std.echo
    base-input:
      output: '{{ env().foo }}'
  nested_concat:
    base: my_wb.concat_twice
    base-input:
      s2: '{{ _.n2 }}'
    input:
      - n2: 'b'
    output:
      nested_concat: '{{ _ }}'
  missing_base:
    base: wrong
    input:
      - some_input
  nested_missing_base:
    base: missing_base
    input:
      - some_input
workflows:
  wf1:
    type: direct
    input: [str1, str2]
    output:
      workflow_result: <% $.result %>
      concat_task_result: <% task(concat).result %>
    tasks:
      concat:
        action: concat_twice s1=<% $.str1 %> s2=<% $.str2 %>
        publish:
          result: <% task(concat).result %>
  wf2:
    input: [str1, str2]
    output:
      workflow_result: <% $.result %>
    tasks:
      concat:
        action: concat_twice s2=<% $.str2 %>
        publish:
          result: <% task(concat).result %>
  wf3:
    input: [str1, str2]
    tasks:
      concat:
        action: concat_twice
  wf4:
    output:
      workflow_result: '{{ _.printenv_result }}'
    tasks:
      printenv:
        action: test_env
        publish:
          printenv_result: '{{ task().result }}'
  wf5:
    output:
      workflow_result: '{{ _.nested_result }}'
    tasks:
      nested_test:
        action: nested_concat
        publish:
          nested_result: '{{ task().result }}'
  wf6:
    tasks:
      missing_action:
        action: missing_base some_input=1
"""


class Books:
    """A workbook's ad-hoc actions as the database would answer them."""

    def __init__(self, *texts: str, namespace: str = ""):
        self.defs: dict[tuple[str, str], object] = {}
        self.workflows: dict[str, lang.WorkflowSpec] = {}
        for text in texts:
            wb = parse_workbook(text)
            self.add(wb.actions, namespace)
            self.workflows.update(wb.workflows)

    def add(self, specs, namespace=""):
        for name, spec in specs.items():
            self.defs[(name, namespace)] = spec

    def lookup(self, name, namespace):
        return self.defs.get((name, namespace))

    def run(self, wf_name, wf_input=None, params=None, complete=None):
        counter = itertools.count(1)
        spec = self.workflows[wf_name]
        snap = engine.Snapshot(
            id="ex1",
            workflow_name=wf_name,
            state="IDLE",
            input=wf_input or {},
            params=params or {},
            runtime={**engine.new_runtime(), "wb_name": wf_name.split(".")[0]},
        )
        d = engine.handle(spec, snap, engine.Start(), lambda: f"id{next(counter)}", lookup=self.lookup)
        snap = d.snapshot
        for action_result in complete or ():
            action = next(a for t in snap.tasks for a in t.actions if a.state == "RUNNING")
            d = engine.handle(
                spec,
                snap,
                engine.ActionCompleted(action.id, "SUCCESS", action_result),
                lambda: f"id{next(counter)}",
                lookup=self.lookup,
            )
            snap = d.snapshot
        return snap


def test_an_adhoc_action_in_a_workbook_runs_its_base_and_transforms_the_result():
    """test_run_workflow_with_adhoc_action: 'a+b and a+b'."""
    snap = Books(WB).run("my_wb.wf1", {"str1": "a", "str2": "b"})
    assert snap.state == "SUCCESS"
    assert snap.output == {"workflow_result": "a+b and a+b", "concat_task_result": "a+b and a+b"}
    action = snap.tasks[0].actions[0]
    assert action.name == "my_wb.concat_twice"  # the short name resolved to the workbook's own
    assert action.input == {"s1": "a", "s2": "b"}
    assert action.runtime_context["adhoc"]["base"] == "std.echo"
    assert action.runtime_context["adhoc"]["base_input"] == {"output": "a+b", "delay": 0}


def test_an_input_left_out_takes_its_default():
    """test_run_adhoc_action_without_input_value: s1 defaults to 'a'."""
    snap = Books(WB).run("my_wb.wf2", {"str1": "zzz", "str2": "b"})
    assert snap.output == {"workflow_result": "a+b and a+b"}
    assert snap.tasks[0].actions[0].input == {"s1": "a", "s2": "b"}


def test_a_missing_required_input_fails_the_task_with_mistral_s_invalid_input():
    """test_run_adhoc_action_without_sufficient_input_value."""
    snap = Books(WB).run("my_wb.wf3", {"str1": "a", "str2": "b"})
    assert snap.state == "ERROR"
    assert (
        "Invalid input [name=my_wb.concat_twice, class=mistral.actions.adhoc.AdHocAction, missing=['s2']]"
        in snap.state_info
    )


def test_an_unexpected_input_is_named():
    books = Books(WB)
    spec = books.lookup("my_wb.concat_twice", "")
    with pytest.raises(adhoc.AdhocError, match=r"unexpected=\['x'\]"):
        adhoc.expand(spec, {"s2": 1, "x": 2}, "", books.lookup, engine.ExprContext(data={}))


def test_base_input_sees_env():
    """test_run_adhoc_action_with_env."""
    snap = Books(WB).run("my_wb.wf4", params={"env": {"foo": "bar"}})
    assert snap.output == {"workflow_result": "bar"}


def test_a_chain_of_bases_applies_each_output_the_base_s_nearest_first():
    """test_run_nested_adhoc_with_output."""
    snap = Books(WB).run("my_wb.wf5")
    assert snap.state == "SUCCESS"
    assert snap.output == {"workflow_result": {"nested_concat": "a+b and a+b"}}


def test_a_base_that_does_not_exist_fails_the_task_when_it_runs():
    """test_missing_adhoc_action_definition: accepted at upload, the task fails."""
    snap = Books(WB).run("my_wb.wf6")
    assert snap.state == "ERROR"
    assert "Failed to find base action [action_name=wrong namespace=]" in snap.state_info


def test_an_async_base_leaves_the_action_running_and_its_result_is_transformed_on_completion():
    """test_adhoc_async_action: '(((Hi!)))'."""
    books = Books("""
version: '2.0'
name: my_wb1
actions:
  my_action:
    input: [my_param]
    base: std.async_noop
    output: (((<% $ %>)))
workflows:
  my_wf:
    tasks:
      task1:
        action: my_action my_param="asdfasdf"
""")
    snap = books.run("my_wb1.my_wf")
    action = snap.tasks[0].actions[0]
    assert (snap.state, action.state, action.is_sync) == ("RUNNING", "RUNNING", False)
    snap = books.run("my_wb1.my_wf", complete=["Hi!"])
    assert snap.state == "SUCCESS"
    assert snap.tasks[0].actions[0].output == {"result": "(((Hi!)))"}
    assert snap.tasks[0].result == "(((Hi!)))"


def test_a_cycle_found_at_run_time_fails_with_mistral_s_message():
    books = Books()
    books.add(parse_actions("version: '2.0'\na1:\n  base: a2\n"))
    books.add(parse_actions("version: '2.0'\na2:\n  base: a1\n"))
    with pytest.raises(
        adhoc.AdhocError,
        match=r"Found a cycle in an ad-hoc action chain \[action_name=a1, "
        r"duplicate_action_name=a1\]",
    ):
        adhoc.expand(books.lookup("a1", ""), {}, "", books.lookup, engine.ExprContext(data={}))


def test_ad_hoc_actions_are_looked_up_in_the_execution_s_namespace_only():
    """Mistral's load_action_definition matches the namespace exactly; built-ins are everywhere."""
    books = Books()
    books.add(parse_actions("version: '2.0'\nmine:\n  base: std.noop\n"), namespace="ns1")
    assert adhoc.find("mine", "ns1", None, books.lookup).name == "mine"
    assert adhoc.find("mine", "", None, books.lookup) is None
    assert adhoc.find("std.echo", "ns1", None, books.lookup).name == "std.echo"


def test_inside_a_workbook_the_workbook_s_own_action_wins_then_the_name_as_written():
    books = Books()
    books.add(parse_actions("version: '2.0'\nwb.act:\n  base: std.noop\nact:\n  base: std.echo output=1\n"))
    assert adhoc.find("act", "", "wb", books.lookup).name == "wb.act"
    assert adhoc.find("act", "", "other", books.lookup).name == "act"
    assert adhoc.find("act", "", None, books.lookup).name == "act"


def test_without_a_lookup_an_unknown_action_still_fails_as_before():
    spec = lang.parse_definition("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: nope\n")["wf"]
    snap = engine.Snapshot(id="e", workflow_name="wf", state="IDLE", input={})
    d = engine.handle(spec, snap, engine.Start())
    assert "Failed to find action [action_name=nope, namespace=]" in d.snapshot.state_info


# --- parsing -------------------------------------------------------------------


def test_a_workbook_stores_its_workflows_and_actions_under_qualified_names():
    wb = parse_workbook(WB)
    assert wb.name == "my_wb"
    assert list(wb.workflows) == [f"my_wb.wf{i}" for i in range(1, 7)]
    assert "my_wb.concat_twice" in wb.actions
    assert wb.actions["my_wb.concat_twice"].input_signature() == 's1="a", s2'
    assert wb.workflows["my_wb.wf1"].name == "my_wb.wf1"


def _errors(text, parse=parse_workbook):
    with pytest.raises(lang.DefinitionError) as info:
        parse(text)
    return info.value.errors


def test_a_workbook_without_a_name_is_refused():
    assert ("name", "'name' is a required property") in _errors(
        "version: '2.0'\nworkflows:\n  w:\n    tasks:\n      t: {action: std.noop}\n"
    )


def test_a_workbook_whose_workflow_names_collide_is_refused_with_the_line():
    errors = _errors("""version: '2.0'
name: wb
workflows:
  w:
    tasks: {t: {action: std.noop}}
  w:
    tasks: {t: {action: std.echo}}
""")
    assert errors == [("", "line 6, column 3: 'w' is defined twice (first on line 4)")]


def test_every_error_of_every_workflow_and_action_comes_with_its_path():
    errors = _errors("""version: '2.0'
name: wb
colour: red
workflows:
  w1:
    tasks:
      t1:
        action: std.noop
        on-success: [t9]
  bad name:
    tasks: {t: {}}
actions:
  a1:
    base-input: {x: 1}
  a2:
    base: std.echo
    input: [x, x]
    output: <% $.( %>
""")
    paths = [p for p, _ in errors]
    assert ("colour", "unknown keyword") in errors
    assert ("workflows.w1.tasks.t1.on-success[0]", "unknown task 't9'") in errors
    assert ("workflows.bad name", "a name may hold only letters, digits, '_' and '-'") in errors
    assert ("actions.a1", "'base' is a required property") in errors
    assert ("actions.a2.input[1]", "input 'x' is declared twice") in errors
    assert "actions.a2.output" in paths


def test_a_cycle_among_the_actions_uploaded_together_is_refused():
    errors = _errors("version: '2.0'\na1:\n  base: a2\na2:\n  base: a1\na3:\n  base: a3\n", parse_actions)
    assert [p for p, _ in errors] == ["a3.base", "a1.base", "a2.base"]
    assert all("Found a cycle in an ad-hoc action chain" in m for _, m in errors)


def test_an_action_may_not_take_a_built_in_s_name():
    assert _errors("version: '2.0'\nstd.echo:\n  base: std.noop\n", parse_actions) == [
        ("std.echo", "Attempt to modify a system action: std.echo")
    ]


def test_inline_base_parameters_are_merged_under_base_input():
    spec = parse_actions("version: '2.0'\nhi:\n  base: std.echo output=inline\n  base-input: {delay: 1}\n")["hi"]
    assert (spec.base, spec.base_input) == ("std.echo", {"delay": 1, "output": "inline"})


def test_a_chain_of_bases_is_bounded():
    books = Books()
    books.add(
        parse_actions(
            "version: '2.0'\n" + "".join(f"a{i}:\n  base: a{i + 1}\n" for i in range(5)) + "a5:\n  base: std.noop\n"
        )
    )
    ctx = engine.ExprContext(data={}, limits=engine.Limits(max_depth=3))
    with pytest.raises(adhoc.AdhocError, match="The chain of bases of a0 is longer than 3 actions"):
        adhoc.expand(books.lookup("a0", ""), {}, "", books.lookup, ctx)
    assert (
        adhoc.expand(books.lookup("a0", ""), {}, "", books.lookup, engine.ExprContext(data={})).action.name
        == "std.noop"
    )


def _one_task(action_line: str, actions_text: str):
    books = Books()
    books.add(parse_actions(actions_text))
    books.workflows["w"] = lang.parse_definition(
        f"version: '2.0'\nw:\n  tasks:\n    t:\n      action: {action_line}\n"
    )["w"]
    return books.run("w")


def test_a_failed_base_fails_the_action_with_its_error_and_no_output_applies():
    """post_process_result: the transformed data is only the result of a success; an error stays the error."""
    snap = _one_task("boom", "version: '2.0'\nboom:\n  base: std.fail error_data=broken\n  output: <% $.x %>\n")
    action = snap.tasks[0].actions[0]
    assert (snap.state, action.state, action.output) == ("ERROR", "ERROR", {"result": "broken"})


def test_an_output_that_can_not_be_evaluated_fails_the_action_with_the_reason():
    snap = _one_task("half", "version: '2.0'\nhalf:\n  base: std.echo output=1\n  output: <% 1 / 0 %>\n")
    action = snap.tasks[0].actions[0]
    assert action.state == "ERROR"
    assert action.state_info.startswith("Failed to transform the result of half: ")


def test_each_item_of_a_with_items_task_runs_the_adhoc_action_with_its_own_input():
    snap = _one_task(
        "twice x=<% $.x %>\n      with-items: x in [1, 2, 3]",
        "version: '2.0'\ntwice:\n  input: [x]\n  base: std.echo output=<% $.x * 2 %>\n",
    )
    assert snap.state == "SUCCESS"
    assert snap.tasks[0].result == [2, 4, 6]
    assert [a.input for a in snap.tasks[0].actions] == [{"x": 1}, {"x": 2}, {"x": 3}]
