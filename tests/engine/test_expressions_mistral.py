"""The expression functions and Jinja's whitespace, as Mistral 23 has them.

Written from the behaviour Mistral's own tests check
(mistral/tests/unit/engine/test_yaql_functions.py,
mistral/tests/unit/expressions/test_jinja_expression.py and
test_yaql_expression.py) and from what Mistral 23 returns for the same
expressions. The data comes from an ExprContext, as the engine builds it.
"""

import json
import re

import pytest

from core import engine
from core.lang.expressions import ExprContext, ExpressionError, evaluate, expression_errors
from core.lang.limits import Limits
from core.lang.spec import parse_definition
from tests.engine.helpers import Harness

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

TASKS = {
    "task1": {
        "id": "t-1",
        "name": "task1",
        "spec": {"description": "This is task 1", "tags": ["t1"]},
        "state": "SUCCESS",
        "state_info": None,
        "result": 1,
        "published": {"a": 1},
    },
    "task2": {
        "id": "t-2",
        "name": "task2",
        "spec": {},
        "state": "ERROR",
        "state_info": "boom",
        "result": None,
        "published": {},
    },
}


def make_ctx(data=None, current="task2", **kwargs):
    """A context whose lookups answer from TASKS and record how they were asked."""
    asked = []

    def task_lookup(name):
        return TASKS.get(name or current)

    def tasks_lookup(state, flat, recursive=False):
        asked.append((state, flat))
        return [t for t in TASKS.values() if state is None or t["state"] == state]

    kwargs.setdefault(
        "execution",
        {
            "id": "wf-1",
            "name": "wf",
            "input": {"k1": "v1", "k2": "v2_default"},
            "params": {"env": {}},
            "state": "RUNNING",
            "created_at": "2026-12-01 10:00:00",
        },
    )
    ctx = ExprContext(data={} if data is None else data, task_lookup=task_lookup, tasks_lookup=tasks_lookup, **kwargs)
    ctx.asked = asked
    return ctx


# --- task() -------------------------------------------------------------------


@pytest.mark.parametrize("expr", ["<% task(task1).{field} %>", "{{{{ task('task1').{field} }}}}"])
def test_task_by_name_gives_every_field_of_its_view(expr):
    ctx = make_ctx()
    for field in ("id", "name", "state", "state_info", "result", "published"):
        assert evaluate(expr.format(field=field), ctx) == TASKS["task1"][field]
    assert evaluate(expr.format(field="spec.description"), ctx) == "This is task 1"


def test_task_without_a_name_is_the_current_task():
    ctx = make_ctx(current="task1")
    assert evaluate("<% task().result %>", ctx) == 1
    assert evaluate("{{ task().id }}", ctx) == "t-1"


def test_task_that_never_ran_is_null():
    ctx = make_ctx()
    assert evaluate("<% task(task3) %>", ctx) is None
    assert evaluate("<% task(task3) = null %>", ctx) is True
    assert evaluate("{{ task('task3') }}", ctx) is None


def test_a_field_of_a_task_that_never_ran_fails_naming_the_expression():
    with pytest.raises(ExpressionError, match="non_existing_task"):
        evaluate("<% task(non_existing_task).name %>", make_ctx())


def test_task_as_a_jinja_filter_reads_the_task_named_in_its_argument():
    assert evaluate("{{ _ | task('task1') }}", make_ctx()) == TASKS["task1"]


def test_the_default_context_knows_no_task():
    ctx = ExprContext(data={})
    assert evaluate("<% task(t1) %>", ctx) is None
    assert evaluate("<% task() %>", ctx) is None


# --- tasks() ------------------------------------------------------------------


def test_tasks_without_arguments_lists_every_task_of_the_execution():
    ctx = make_ctx()
    assert [t["name"] for t in evaluate("<% tasks() %>", ctx)] == ["task1", "task2"]
    assert ctx.asked == [(None, False)]


def test_tasks_passes_the_state_and_flat_filters_positionally_and_by_name():
    ctx = make_ctx()
    assert [t["name"] for t in evaluate("<% tasks('wf-1', true, ERROR, true) %>", ctx)] == ["task2"]
    assert [t["name"] for t in evaluate("<% tasks(state => SUCCESS) %>", ctx)] == ["task1"]
    assert [t["name"] for t in evaluate("{{ tasks(state='ERROR') }}", ctx)] == ["task2"]
    assert ctx.asked == [("ERROR", True), ("SUCCESS", False), ("ERROR", False)]


def test_tasks_of_the_current_execution_by_its_id_and_of_another_one():
    ctx = make_ctx()
    assert len(evaluate("<% tasks(execution().id) %>", ctx)) == 2
    assert evaluate("<% tasks('another-execution') %>", ctx) == []


def test_tasks_as_a_jinja_filter():
    assert [t["name"] for t in evaluate("{{ _ | tasks(state='SUCCESS') }}", make_ctx())] == ["task1"]


def test_tasks_with_the_default_context_is_empty():
    assert evaluate("<% tasks() %>", ExprContext(data={})) == []


# --- execution(), env(), global(), uuid() -------------------------------------------


def test_execution_gives_the_execution_view():
    ctx = make_ctx()
    assert evaluate("<% execution().input %>", ctx) == {"k1": "v1", "k2": "v2_default"}
    assert evaluate("{{ execution().id }}", ctx) == "wf-1"
    assert evaluate("{{ _ | execution }}", ctx) == ctx.execution


def test_executions_is_known_but_says_why_it_does_not_run():
    with pytest.raises(ExpressionError, match=r"executions\(\) is not available in Gust"):
        evaluate("<% executions() %>", make_ctx())


def test_env_as_function_and_filter():
    ctx = make_ctx(env={"region": "north"})
    assert evaluate("<% env().region %>", ctx) == "north"
    assert evaluate("{{ env() }}", ctx) == {"region": "north"}
    assert evaluate("{{ _ | env }}", ctx) == {"region": "north"}


def test_global_reads_the_global_data_and_defaults_to_the_data():
    scoped = make_ctx(data={"v": "branch"}, global_data={"v": "global"})
    assert evaluate("<% global(v) %>", scoped) == "global"
    assert evaluate("{{ global('v') }}", scoped) == "global"
    assert evaluate("<% global(v) %>", make_ctx(data={"v": "only"})) == "only"
    assert evaluate("<% global(missing) %>", scoped) is None


def test_uuid_is_a_new_version_4_uuid_at_each_call():
    ctx = make_ctx()
    first, second = evaluate("<% uuid() %>", ctx), evaluate("{{ uuid() }}", ctx)
    assert UUID.match(first) and UUID.match(second) and first != second
    assert UUID.match(evaluate("{{ 'anything' | uuid }}", ctx))
    assert evaluate("<% len(uuid()) %>", ctx) == 36


# --- JSON and YAML --------------------------------------------------------------

DATA = {
    "data": {"key1": "foo", "key2": "bar"},
    "list": [{"this": "is valid"}, {"so": "is this", "and": "this too", "might": "as well"}, "validaswell"],
}


def test_json_dump_indents_by_four_as_mistral():
    expected = '{\n    "key1": "foo",\n    "key2": "bar"\n}'
    assert evaluate("<% json_dump($.data) %>", make_ctx(DATA)) == expected
    assert evaluate("{{ json_dump(_.data) }}", make_ctx(DATA)) == expected
    assert evaluate("{{ _ | json_dump(_.data) }}", make_ctx(DATA)) == expected
    assert evaluate('<% json_dump("é") %>', make_ctx()) == '"\\u00e9"'


def test_json_dump_of_yaql_built_values():
    assert json.loads(evaluate("<% json_dump({a => [1, 2]}) %>", make_ctx())) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("3", '"3"'),
        (3, "3"),
        ([1, 2], "[\n    1,\n    2\n]"),
        ({"a": "b"}, '{\n    "a": "b"\n}'),
        ("Mistral\nis\nawesome", '"Mistral\nis\nawesome"'),
    ],
)
def test_json_pp_as_mistral_had_it(value, shown):
    ctx = make_ctx({"v": value})
    assert evaluate("{{ json_pp(_.v) }}", ctx) == shown
    assert evaluate("{{ _.v | json_pp }}", ctx) == shown
    assert evaluate("<% json_pp($.v) %>", ctx) == shown


def test_json_parse():
    assert evaluate("""<% json_parse('{"a": [1, null]}') %>""", make_ctx()) == {"a": [1, None]}
    assert evaluate("{{ json_parse('[1]') }}", make_ctx()) == [1]
    with pytest.raises(ExpressionError, match="Can not evaluate YAQL expression"):
        evaluate("<% json_parse('{nope') %>", make_ctx())


def test_yaml_dump_sorts_keys_in_block_style_as_mistral():
    expected = "- this: is valid\n- and: this too\n  might: as well\n  so: is this\n- validaswell\n"
    assert evaluate("<% yaml_dump($.list) %>", make_ctx(DATA)) == expected
    assert evaluate("{{ yaml_dump(_.list) }}", make_ctx(DATA)) == expected
    dumped = evaluate("<% yaml_dump($.data) %>", make_ctx(DATA))
    assert "key1: foo" in dumped and "key2: bar" in dumped


def test_yaml_dump_writes_a_repeated_value_again_instead_of_an_alias():
    shared = {"x": 1}
    dumped = evaluate("<% yaml_dump($) %>", make_ctx({"a": shared, "b": shared}))
    assert "&" not in dumped and "*" not in dumped and dumped.count("x: 1") == 2


def test_yaml_parse_reads_anchors_and_aliases_as_text():
    ctx = make_ctx({"text": "a: &x 1\nb: *x\nc: [1, two]"})
    assert evaluate("<% yaml_parse($.text) %>", ctx) == {"a": "&x 1", "b": "*x", "c": [1, "two"]}
    assert evaluate("{{ yaml_parse(_.text) }}", ctx) == {"a": "&x 1", "b": "*x", "c": [1, "two"]}


def test_yaml_parse_of_a_value_json_can_not_hold_fails_with_its_path():
    with pytest.raises(ExpressionError, match="the result.d: a date is not a JSON value"):
        evaluate("<% yaml_parse($.text) %>", make_ctx({"text": "d: 2020-01-01"}))


def test_a_dump_larger_than_the_field_size_limit_fails():
    ctx = make_ctx({"big": ["x" * 100] * 20}, limits=Limits(field_size_kb=1))
    with pytest.raises(ExpressionError, match="larger than the size limit of 1 KB"):
        evaluate("<% json_dump($.big) %>", ctx)


# --- Jinja's whitespace ------------------------------------------------------------


def test_block_lines_are_removed_as_mistral_renders_them():
    # Mistral's InlineJinjaEvaluatorTest.test_block_placeholders
    text = """
            Statistics for tenant "{{ _.project_id }}"

            Number of virtual machines: {{ _.vm_count }}
            {% if _.active_vm_count %}
            Number of active virtual machines: {{ _.active_vm_count }}
            {% endif %}
            Number of networks: {{ _.net_count }}

            -- Sincerely, Mistral Team.
        """
    data = {"project_id": "1-2-3-4", "vm_count": 28, "active_vm_count": 0, "net_count": 1}
    assert (
        evaluate(text, make_ctx(data))
        == """
            Statistics for tenant "1-2-3-4"

            Number of virtual machines: 28
            Number of networks: 1

            -- Sincerely, Mistral Team.
        """
    )


def test_a_block_scalars_last_newline_is_dropped():
    ctx = make_ctx({"x": 2, "items": [1, "two"], "on": True})
    assert evaluate("v={{ _.x }}\n", ctx) == "v=2"
    assert evaluate("v={{ _.x }}\n\n", ctx) == "v=2\n"
    assert evaluate("a {{ _.x }}\n{% if _.on %}\nyes\n{% endif %}\nb\n", ctx) == "a 2\nyes\nb"


def test_indented_block_tags_leave_no_blank_lines():
    ctx = make_ctx({"l": [1, "two"], "off": False})
    assert evaluate("x\n  {% for i in _.l %}\n  - {{ i }}\n  {% endfor %}\ndone\n", ctx) == "x\n  - 1\n  - two\ndone"
    assert evaluate("{{ 1 }}\n  {% if _.off %}\n  yes\n  {% endif %}\n  end\n", ctx) == "1\n  end"


def test_inline_blocks_keep_the_text_around_them():
    assert evaluate("{{ 1 }} {% if true %}inline{% endif %} tail\n", make_ctx()) == "1 inline tail"


# --- what is checked without evaluating ---------------------------------------------


def test_unknown_yaql_functions_are_found_with_their_path():
    errors = expression_errors({"x": "<% foo(1) %>", "y": ["<% $.list.select(bar($)) %>"], "z": "<% $.a.baz() %>"}, "p")
    assert errors == [
        ("p.x", "unknown YAQL function 'foo'"),
        ("p.y[0]", "unknown YAQL function 'bar'"),
        ("p.z", "unknown YAQL function 'baz'"),
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "<% task(t1).result %>",
        "<% tasks(execution().id, true, ERROR, true) %>",
        "<% env().x %>",
        "<% global(x) %>",
        "<% uuid() %>",
        "<% json_dump($) + json_pp($) + yaml_dump($) %>",
        "<% json_parse('1') + yaml_parse('1') %>",
        "<% executions() %>",
        "<% len($.x) + sum([1]) %>",
        "<% $.l.where($ > 1).select($ * 2).first() %>",
        "<% let(x => 1) -> $x %>",
        "<% dict(a => 1).keys().join(',') %>",
        "<% str(now()) %>",
        "<% regex('a').matches('a') %>",
        "<% def(double, $ * 2) -> double(3) %>",
        "<% range(0, 3).toList() %>",
    ],
)
def test_real_yaql_functions_pass(expr):
    assert expression_errors(expr) == []


def test_unknown_jinja_filters_tests_and_functions_are_found():
    text = "{{ _.x | nope }}{% if _.y is nah %}{{ zap() }}{% endif %}{% filter shout %}x{% endfilter %}"
    errors = expression_errors(text)
    assert [msg for _, msg in errors] == [
        "unknown Jinja filter 'nope'",
        "unknown Jinja filter 'shout'",
        "unknown Jinja test 'nah'",
        "unknown Jinja function 'zap'",
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "{{ task('t1').result }}",
        "{{ tasks(state='ERROR') | length }}",
        "{{ execution().id }}",
        "{{ env() }}",
        "{{ global('x') }}",
        "{{ uuid() }}",
        "{{ json_dump(_) ~ json_pp(_) ~ yaml_dump(_) }}",
        "{{ _ | task('t1') }}",
        "{{ _ | json_pp }}",
        "{{ _.l | selectattr('a', 'equalto', 1) | list | length }}",
        "{{ _.x is defined }}",
        "{{ range(3) | list }}",
        "{{ dict(a=1) | tojson }}",
        "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}",
        "{% set f = namespace(n=1) %}{{ f.n }}",
        "{% for i in _.l %}{{ loop.cycle('a', 'b') }}{% endfor %}",
    ],
)
def test_real_jinja_names_pass(expr):
    assert expression_errors(expr) == []


def test_a_string_mixing_yaql_and_jinja_is_refused_as_mistral_does():
    assert expression_errors("<% $.x %> and {{ _.y }}") == [
        ("", "mixes YAQL and Jinja expressions in one string, which Mistral does not allow")
    ]


def test_syntax_errors_keep_their_messages():
    assert expression_errors(["<% $.x + %>", "{{ _.x + }}"]) == [
        ("[0]", "Parse error: unexpected end of statement"),
        ("[1]", "Jinja syntax error: unexpected 'end of print statement'"),
    ]


# --- through the engine (Mistral's engine/test_yaql_functions.py) ----------------


def run(text, given=None):
    """Harness over the workflow, with the input the service would store (defaults applied)."""
    spec = next(iter(parse_definition(text).values()))
    values, errors = engine.check_input(spec, given or {})
    assert not errors
    h = Harness(text, workflow_input=values)
    h.start()
    return h


def test_task_function_in_a_workflow():
    h = run("""
version: '2.0'
wf:
  tasks:
    task1:
      description: This is task 1
      tags: ['t1']
      action: std.echo output=1
      publish:
        name: <% task(task1).name %>
        description: <% task(task1).spec.description %>
        tags: <% task(task1).spec.tags %>
        state: <% task(task1).state %>
        state_info: <% task(task1).state_info %>
        res: <% task(task1).result %>
        own_id: <% task().id %>
      on-success:
        - task2
    task2:
      action: std.echo output=<% task(task1).result + 1 %>
      publish:
        res: <% task(task1).result %>
        task2_res: <% task(task2).result %>
        jinja_res: '{{ task("task2").result }}'
""")
    assert h.state == "SUCCESS"
    task1 = h.task("task1")
    assert task1.published == {
        "name": "task1",
        "description": "This is task 1",
        "tags": ["t1"],
        "state": "SUCCESS",
        "state_info": None,
        "res": 1,
        "own_id": task1.id,
    }
    assert h.task("task2").published == {"res": 1, "task2_res": 2, "jinja_res": 2}


def test_task_function_of_a_task_that_did_not_run_is_null_in_the_output():
    h = run("""
version: '2.0'
wf:
  output:
    task2: <% task(task2) %>
    task2bool: <% task(task2) = null %>
  tasks:
    task1:
      action: std.noop
      on-success:
        - task2: <% false %>
    task2:
      action: std.noop
""")
    assert h.state == "SUCCESS" and h.snap.output == {"task2": None, "task2bool": True}
    assert [t.name for t in h.snap.tasks] == ["task1"]


def test_a_field_of_a_task_that_does_not_exist_fails_the_workflow_naming_it():
    h = run("""
version: '2.0'
wf:
  output:
    task_name: <% task(non_existing_task).name %>
  tasks:
    task1:
      action: std.noop
""")
    assert h.state == "ERROR" and "non_existing_task" in h.snap.state_info


def test_execution_tasks_and_uuid_in_a_workflow():
    h = run(
        """
version: '2.0'
wf:
  input:
    - k1
    - k2: v2_default
  output:
    input: <% execution().input %>
    name: <% execution().name %>
    done: <% tasks(state => SUCCESS).select($.name) %>
    id: <% task(task1).result %>
  tasks:
    task1:
      action: std.echo output=<% uuid() %>
      on-success: task2
    task2:
      action: std.noop
""",
        {"k1": "v1"},
    )
    assert h.state == "SUCCESS"
    out = h.snap.output
    assert out["input"] == {"k1": "v1", "k2": "v2_default"} and out["name"] == "wf"
    assert out["done"] == ["task1", "task2"] and UUID.match(out["id"])


def test_yaml_dump_and_json_dump_of_published_data():
    h = run("""
version: '2.0'
wf:
  tasks:
    task1:
      publish:
        data: <% {key1 => foo, key2 => bar} %>
      on-success: task2
    task2:
      publish:
        yaml_str: <% yaml_dump($.data) %>
        json_str: <% json_dump($.data) %>
""")
    published = h.task("task2").published
    assert "key1: foo" in published["yaml_str"] and "key2: bar" in published["yaml_str"]
    assert '"key1": "foo"' in published["json_str"] and '"key2": "bar"' in published["json_str"]
