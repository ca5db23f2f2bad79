"""Two-pass validation: every error, each with its path. No database."""

import pytest

from core import actions
from core.lang.spec import DefinitionError, parse_definition


def errors_of(text):
    with pytest.raises(DefinitionError) as exc:
        parse_definition(text)
    return exc.value.errors


def test_several_workflows_in_one_file_and_their_start_tasks():
    specs = parse_definition("""
version: '2.0'
a:
  input: [x, {y: 2}]
  tasks:
    t1: {action: std.noop, on-success: [t2]}
    t2: {action: std.noop}
b:
  tasks:
    only: {action: std.echo output=hi}
""")
    assert list(specs) == ["a", "b"]
    assert specs["a"].start_tasks == ["t1"]
    assert specs["a"].input == (("x", actions.REQUIRED), ("y", 2))
    assert specs["a"].input_signature() == "x, y=2"
    assert specs["b"].tasks["only"].input == {"output": "hi"}


def test_short_form_with_name_at_the_top():
    specs = parse_definition("version: '2.0'\nname: short\ntasks:\n  t: {action: std.noop}\n")
    assert list(specs) == ["short"]


def test_inline_action_parameters_are_typed():
    spec = parse_definition("""
version: '2.0'
wf:
  tasks:
    t:
      action: std.echo output='a b' delay=0
      input: {output: <% 1 %>}
""")["wf"]
    assert spec.tasks["t"].input == {"output": "<% 1 %>", "delay": 0}


def test_broken_yaml_reports_line_and_column():
    with pytest.raises(DefinitionError) as exc:
        parse_definition("version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n     on-success: t2\n")
    assert exc.value.message.startswith("Definition could not be parsed: line 6, column 6")


def test_every_graph_error_is_reported_with_its_path():
    errs = errors_of("""
version: '2.0'
wf:
  tasks:
    t1:
      action: std.noop
      on-success: [t3]
      on-error:
        - t2: <% $.x + %>
    t2:
      action: std.nope
      join: 5
""")
    assert ("wf.tasks.t1.on-success[0]", "unknown task 't3'") in errs
    assert ("wf.tasks.t1.on-error[0]", "Parse error: unexpected end of statement") in errs
    assert not [e for e in errs if e[0] == "wf.tasks.t2.action"]  # as Mistral: known only when it runs
    assert ("wf.tasks.t2.join", "join: 5 but only 1 task(s) lead to 't2'") in errs


def test_schema_errors_name_the_key():
    errs = errors_of("""
version: '2.0'
wf:
  tasks:
    t1:
      action: std.noop
      on-sucess: [t2]
      join: sometimes
""")
    assert ("wf.tasks.t1.on-sucess", "unknown keyword") in errs
    assert any(p == "wf.tasks.t1.join" for p, _ in errs)


def test_no_start_task_and_missing_version():
    errs = errors_of("wf:\n  tasks:\n    a: {on-success: [b]}\n    b: {on-success: [a]}\n")
    assert ("version", "'version' is a required property; use '2.0'") in errs
    assert ("wf.tasks", "no start task: every task is the target of a transition") in errs


def test_unknown_and_missing_action_parameters():
    errs = errors_of("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.echo outptu=1\n")
    assert ("wf.tasks.t.input", "std.echo: unexpected parameter 'outptu'") in errs
    assert ("wf.tasks.t.input", "std.echo: missing required parameter 'output'") in errs


def test_target_is_accepted_and_its_expression_checked():
    """Mistral's executor routing: Gust has one pool of workers, so a
    target runs as any task; its expression must still parse."""
    parse_definition("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      target: a-host\n")
    errs = errors_of("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      target: <% $. %>\n")
    assert errs[0][0] == "wf.tasks.t.target"


def test_with_items_text_is_checked_as_mistral_reads_it():
    """Mistral's test_with_items_plain_list_wrong: "Invalid array in 'with-items'"."""
    errs = errors_of("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      with-items: x in [1,,3]\n")
    assert errs[0][0] == "wf.tasks.t.with-items" and errs[0][1].startswith(
        "Invalid array in 'with-items' clause: [1,,3]"
    )
    errs = errors_of("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      with-items: x of 3\n")
    assert errs[0][0] == "wf.tasks.t.with-items" and "Wrong format of 'with-items' property" in errs[0][1]
    errs = errors_of(
        "version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      with-items: x in <% $.a + %>\n"
    )
    assert errs[0][0] == "wf.tasks.t.with-items.x"


def test_a_task_has_an_action_or_a_workflow_not_both():
    errs = errors_of("version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      workflow: other\n")
    assert ("wf.tasks.t", "a task has either 'action' or 'workflow', not both") in errs


def test_jinja_syntax_errors_are_found():
    errs = errors_of("version: '2.0'\nwf:\n  output: {a: '{{ _.x + }}'}\n  tasks:\n    t: {action: std.noop}\n")
    assert errs[0][0] == "wf.output.a" and "Jinja syntax error" in errs[0][1]


def test_schema_errors_do_not_hide_the_graph_errors_of_the_same_workflow():
    errs = errors_of(
        "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n      on-success: nope\n      bogus: 1\n"
    )
    assert set(errs) == {("wf.tasks.t1.bogus", "unknown keyword"), ("wf.tasks.t1.on-success[0]", "unknown task 'nope'")}


@pytest.mark.parametrize(
    "policy,path",
    [
        ("retry: {count: -1, delay: 1}", "wf.tasks.t.retry"),
        ("retry: {count: 3, delay: 1, backof: 2}", "wf.tasks.t.retry"),
        ("retry: {count: 3}", "wf.tasks.t.retry"),
        ("timeout: soon", "wf.tasks.t.timeout"),
        ("wait-before: -5", "wf.tasks.t.wait-before"),
        ("pause-before: 3", "wf.tasks.t.pause-before"),
    ],
)
def test_an_invalid_policy_is_refused_at_upload_with_its_path(policy, path):
    errs = errors_of(f"version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n      {policy}\n")
    assert any(p == path for p, _ in errs), errs


def test_task_defaults_are_checked_too():
    errs = errors_of(
        "version: '2.0'\nwf:\n  task-defaults:\n    timeout: -1\n    on-error: [ghost]\n"
        "  tasks:\n    t: {action: std.noop}\n"
    )
    assert any(p == "wf.task-defaults.timeout" for p, _ in errs), errs


def test_policies_as_expressions_are_accepted():
    parse_definition(
        "version: '2.0'\nwf:\n  tasks:\n    t:\n      action: std.noop\n"
        "      timeout: <% $.t %>\n      retry: {count: <% $.n %>, delay: 1, break-on: <% $.x %>}\n"
    )
