"""Upload validation as Mistral 23's, written from the tables of
mistral/tests/unit/lang/v2/test_workflows.py (WorkflowSpecValidationTest),
plus the expression checks Gust adds at upload: every error with its path,
all of them in one answer."""

import copy

import pytest
import yaml

from core.lang.spec import DefinitionError, parse_definition

TASKS = {"t1": {"action": "std.noop"}}


def errors_of(doc) -> list[tuple[str, str]]:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return caught.value.errors


def accepted(doc) -> bool:
    try:
        parse_definition(yaml.safe_dump(doc, sort_keys=False))
    except DefinitionError:
        return False
    return True


def wf(**sections) -> dict:
    body = {"tasks": copy.deepcopy(TASKS)}
    body.update(sections)
    return {"version": "2.0", "test": body}


# --- the workflow level ---------------------------------------------------------


@pytest.mark.parametrize(("wf_type", "ok"), [("direct", True), ("circular", False), (None, False)])
def test_workflow_types(wf_type, ok):
    assert accepted(wf(type=wf_type)) is ok


def test_an_unknown_type_names_the_type_key():
    assert errors_of(wf(type="circular")) == [("test.type", "'circular' is not one of ['direct', 'reverse']")]


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        (None, False),
        ("", False),
        ("2.0", True),
        (2.0, True),
        (2, True),
        ("2", True),
        ("1.0", False),
        ("two", False),
        (True, False),
    ],
)
def test_version(version, ok):
    doc = wf()
    doc["version"] = version
    assert accepted(doc) is ok


def test_version_is_required():
    doc = wf()
    del doc["version"]
    assert errors_of(doc) == [("version", "'version' is a required property; use '2.0'")]


@pytest.mark.parametrize(
    ("wf_input", "ok"),
    [
        (["var1", "var2"], True),
        (["var1", "var1"], False),
        ([12345], False),
        ([None], False),
        ([""], False),
        (None, False),
        ([], False),
        (["var1", {"var2": 2}], True),
        ([{"var1": 1}, {"var2": 2}], True),
        ([{"var1": None}], True),
        ([{"var1": 1}, {"var1": 1}], False),
        ([{"var1": 1, "var2": 2}], False),
    ],
)
def test_inputs(wf_input, ok):
    assert accepted(wf(input=wf_input)) is ok


def test_an_input_declared_twice_names_the_second_one():
    assert errors_of(wf(input=["a", "b", {"a": 1}])) == [("test.input[2]", "input 'a' is declared twice")]


@pytest.mark.parametrize("section", ["output", "output-on-error", "vars"])
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"k1": "a", "k2": 1, "k3": True, "k4": None}, True),
        ({"k1": "<% $.v1 %>"}, True),
        ({"k1": "<% 1 + 2 %>"}, True),
        ({"k1": "{{ _.v1 }}"}, True),
        ({"k1": "<% * %>"}, False),
        ({"k1": "{{ * }}"}, False),
        ([], False),
        ("whatever", False),
        (None, False),
        ({}, False),
    ],
)
def test_outputs_and_vars(section, value, ok):
    assert accepted(wf(**{section: value})) is ok


def test_an_empty_section_says_so():
    assert errors_of(wf(vars={})) == [("test.vars", "must not be empty")]


@pytest.mark.parametrize(
    ("tags", "ok"), [("", False), ([], False), ([""], False), (["tag"], True), (["tag", "tag"], False), (None, False)]
)
def test_tags(tags, ok):
    assert accepted(wf(tags=tags)) is ok


@pytest.mark.parametrize(("tasks", "message"), [({}, "must not be empty"), (None, "None is not of type 'object'")])
def test_tasks_must_be_a_non_empty_mapping(tasks, message):
    assert errors_of({"version": "2.0", "test": {"tasks": tasks}}) == [("test.tasks", message)]


def test_tasks_are_required():
    assert errors_of({"version": "2.0", "test": {"input": ["a"]}}) == [("test", "'tasks' is a required property")]


def test_a_broken_section_does_not_hide_the_graph_errors():
    errors = errors_of(wf(output="whatever", tasks={"t1": {"action": "std.noop", "on-success": ["nope"]}}))
    assert set(errors) == {
        ("test.output", "'whatever' is not of type 'object'"),
        ("test.tasks.t1.on-success[0]", "unknown task 'nope'"),
    }


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "b98180ba-48a0-4e26-ab2e-50dc224f6fd1",
        "B98180BA48A04E26AB2E50DC224F6FD1",
        "{b98180ba-48a0-4e26-ab2e-50dc224f6fd1}",
    ],
)
def test_a_workflow_name_in_the_format_of_a_uuid_is_refused(name):
    errors = errors_of({"version": "2.0", name: {"tasks": TASKS}})
    assert errors == [(name, "a workflow name cannot be in the format of a UUID")]


def test_a_workflow_name_with_spaces_is_refused_in_both_forms():
    assert errors_of({"version": "2.0", "my wf": {"tasks": TASKS}}) == [
        ("my wf", "Name 'my wf' must not contain spaces")
    ]
    assert errors_of({"version": "2.0", "name": "my wf", "tasks": TASKS}) == [
        ("my wf", "Name 'my wf' must not contain spaces")
    ]


def test_a_workflow_name_longer_than_its_column_is_refused():
    name = "w" * 256
    ((path, message),) = errors_of({"version": "2.0", name: {"tasks": TASKS}})
    assert path.startswith("w" * 40) and message == "a workflow name is at most 255 characters, this one has 256"
    assert accepted({"version": "2.0", "w" * 255: {"tasks": TASKS}})


@pytest.mark.parametrize("name", ["wf", "my-wf", "my.wf", "my_wf:v2", "wf/with/slashes", "wf1"])
def test_names_mistral_accepts(name):
    assert accepted({"version": "2.0", name: {"tasks": TASKS}})


def test_task_names_with_punctuation_are_accepted():
    # Mistral's test_task_name
    names = ["task1", "t2-task", "t3.task", "t4,task", "t5+task", "t6$task", "t7%task", "t8^task"]
    tasks = {n: {"action": "std.noop", "on-success": [after]} for n, after in zip(names, names[1:], strict=False)}
    tasks[names[-1]] = {"action": "std.noop"}
    assert accepted({"version": "2.0", "workflowname": {"type": "direct", "tasks": tasks}})


# --- the task graph -------------------------------------------------------------------


def test_a_direct_workflow_needs_a_start_task():
    errors = errors_of(wf(tasks={"task1": {"on-complete": "task2"}, "task2": {"on-complete": "task1"}}))
    assert errors == [("test.tasks", "no start task: every task is the target of a transition")]


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"task3": {"join": 2}}, True),
        ({"task3": {"join": 5}}, False),
        ({"task3": {"join": 1}}, True),
        ({"task3": {"join": "one"}}, True),
        ({"task3": {"join": "all"}}, True),
        ({"task4": {"join": "all"}}, False),
        ({"task4": {"join": 1}}, False),
        ({"task4": {"join": "one"}}, False),
    ],
)
def test_join_needs_enough_inbound_tasks(extra, ok):
    tasks = {"task1": {"on-complete": "task3"}, "task2": {"on-complete": "task3"}, "task3": {}, **extra}
    assert accepted(wf(tasks=tasks)) is ok


def test_join_errors_name_the_task():
    tasks = {"task1": {"on-complete": "task3"}, "task3": {"join": 2}, "task4": {"join": "all"}}
    assert errors_of(wf(tasks=tasks)) == [
        ("test.tasks.task3.join", "join: 2 but only 1 task(s) lead to 'task3'"),
        ("test.tasks.task4.join", "join: all but no task leads to 'task4'"),
    ]


# --- expressions ----------------------------------------------------------------------


def test_unknown_functions_are_reported_at_upload_with_their_path():
    text = """
version: '2.0'
wf:
  vars:
    v: <% nope_vars() %>
  output:
    o: '{{ _.x | nope_filter }}'
  tasks:
    t1:
      action: std.echo output=<% nope_inline() %>
      publish:
        x: <% foo($) %>
      publish-on-error:
        e: '{{ nope_jinja() }}'
      on-success:
        - t2: <% nope_condition() %>
        - fail msg=<% nope_msg() %>
    t2:
      action: std.echo
      input:
        output: '{{ _ is nope_test }}'
"""
    assert errors_of(text) == [
        ("wf.output.o", "unknown Jinja filter 'nope_filter'"),
        ("wf.vars.v", "unknown YAQL function 'nope_vars'"),
        ("wf.tasks.t1.input.output", "unknown YAQL function 'nope_inline'"),
        ("wf.tasks.t1.publish.x", "unknown YAQL function 'foo'"),
        ("wf.tasks.t1.publish-on-error.e", "unknown Jinja function 'nope_jinja'"),
        ("wf.tasks.t1.on-success[0]", "unknown YAQL function 'nope_condition'"),
        ("wf.tasks.t1.on-success[1].msg", "unknown YAQL function 'nope_msg'"),
        ("wf.tasks.t2.input.output", "unknown Jinja test 'nope_test'"),
    ]


def test_mistrals_functions_and_the_standard_libraries_upload():
    text = """
version: '2.0'
wf:
  input:
    - items: [1, 2]
  vars:
    id: <% uuid() %>
  output:
    all: <% tasks(execution().id, true, SUCCESS).select($.name) %>
    text: '{{ json_dump(_.items) }}'
  tasks:
    t1:
      action: std.echo output=<% len($.items) %>
      publish:
        parsed: <% yaml_parse(yaml_dump($.items)) + json_parse(json_dump($.items)) %>
        region: <% env().get(region, north) %>
        seen: <% global(id) %>
        pretty: '{{ _.items | json_pp }}'
        state: '{{ task().state }}'
      on-success:
        - t2: <% task(t1).result > 1 and $.items.where($ > 1).any() %>
    t2:
      action: std.echo
      input:
        output: '{% for i in _.items %}{{ i | string | upper }}{% endfor %}'
"""
    assert set(parse_definition(text)) == {"wf"}


def test_a_string_mixing_yaql_and_jinja_is_refused():
    errors = errors_of(wf(output={"o": "<% $.a %>-{{ _.b }}"}))
    assert errors == [("test.output.o", "mixes YAQL and Jinja expressions in one string, which Mistral does not allow")]


def test_every_error_of_a_file_comes_in_one_answer():
    text = """
version: '2.0'
my wf:
  tasks:
    t1: {action: std.noop}
good:
  type: circular
  input: [a, a]
  tasks:
    t1:
      action: std.noop
      publish:
        x: <% foo() %>
    t2:
      join: all
"""
    assert set(errors_of(text)) == {
        ("my wf", "Name 'my wf' must not contain spaces"),
        ("good.type", "'circular' is not one of ['direct', 'reverse']"),
        ("good.input[1]", "input 'a' is declared twice"),
        ("good.tasks.t1.publish.x", "unknown YAQL function 'foo'"),
        ("good.tasks.t2.join", "join: all but no task leads to 't2'"),
    }


def test_an_expression_nested_too_deeply_to_parse_is_an_error_not_a_crash():
    deep = "(" * 3000 + "1" + ")" * 3000
    errors = errors_of(wf(output={"j": "{{ " + deep + " }}", "y": "<% " + deep + " %>"}))
    assert errors == [("test.output.j", "Jinja syntax error: the expression is nested too deeply to parse")]
