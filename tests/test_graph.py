"""Task graph layout: pure, no database."""

import textwrap

from core import graph
from core.lang.spec import parse_definition


def spec_of(tasks_yaml: str, name: str = "wf"):
    text = "version: '2.0'\n" + name + ":\n  tasks:\n" + textwrap.indent(textwrap.dedent(tasks_yaml), "    ")
    return parse_definition(text)[name]


def layers(layout):
    return {n.id: n.layer for n in layout.nodes}


def test_chain_gets_one_layer_per_task_top_to_bottom():
    lay = graph.layout(
        spec_of("""
        a:
          on-success: [b]
        b:
          on-success: [c]
        c: {}
    """)
    )
    assert layers(lay) == {"a": 0, "b": 1, "c": 2}
    assert lay.layers == 3
    ys = [lay.node(n).y for n in "abc"]
    assert ys == sorted(ys) and len(set(ys)) == 3
    assert [(e.source, e.target, e.kind, e.back) for e in lay.edges] == [
        ("a", "b", "success", False),
        ("b", "c", "success", False),
    ]
    assert lay.width >= graph.NODE_W and lay.height > ys[-1] + graph.NODE_H


def test_layer_is_the_longest_path_not_the_shortest():
    # c is reachable from a directly and through b: it must sit below b.
    lay = graph.layout(
        spec_of("""
        a:
          on-success: [b, c]
        b:
          on-success: [c]
        c:
          join: all
    """)
    )
    assert layers(lay) == {"a": 0, "b": 1, "c": 2}


def test_fan_out_of_100_with_join_wraps_rows_and_keeps_layers():
    fan = "\n".join(f"t{i}:\n  on-success: [join_all]" for i in range(100))
    lay = graph.layout(
        spec_of(f"start:\n  on-success: [{', '.join(f't{i}' for i in range(100))}]\n{fan}\njoin_all:\n  join: all\n")
    )
    lay_of = layers(lay)
    assert lay_of["start"] == 0 and lay_of["join_all"] == 2
    assert all(lay_of[f"t{i}"] == 1 for i in range(100))
    assert lay.layers == 3
    # Wrapped: at most MAX_PER_ROW nodes share a y, so the picture stays narrow.
    middle = [n for n in lay.nodes if n.layer == 1]
    rows = {}
    for n in middle:
        rows.setdefault(n.y, []).append(n)
    assert len(rows) == -(-100 // graph.MAX_PER_ROW)
    assert max(len(r) for r in rows.values()) == graph.MAX_PER_ROW
    assert lay.width < 2 * graph.MARGIN + graph.MAX_PER_ROW * (graph.NODE_W + graph.GAP_X) + graph.BACK_ROOM
    # The join sits below every fanned-out task, nodes never overlap.
    assert lay.node("join_all").y > max(n.y for n in middle)
    boxes = {(n.x, n.y) for n in lay.nodes}
    assert len(boxes) == len(lay.nodes) == 102
    assert len(lay.edges) == 200 and not any(e.back for e in lay.edges)
    # Edges into the grid run down the gutters and enter each node from the left.
    t42 = lay.node("t42")
    into = next(e for e in lay.edges if e.target == "t42")
    assert into.path.endswith(f"L{t42.x - 2:g},{t42.cy:g}")


def test_cycle_terminates_and_marks_the_back_edge():
    lay = graph.layout(
        spec_of("""
        init:
          on-success: [work]
        work:
          on-success:
            - check
        check:
          on-success:
            - work: <% $.again %>
            - done: <% not $.again %>
        done: {}
    """)
    )
    assert layers(lay) == {"init": 0, "work": 1, "check": 2, "done": 3}
    back = [(e.source, e.target) for e in lay.edges if e.back]
    assert back == [("check", "work")]
    assert all(e.conditional for e in lay.edges if e.source == "check")
    assert not any(e.conditional for e in lay.edges if e.source != "check")


def test_self_loop_and_unreachable_cycle_do_not_hang():
    spec = spec_of("""
        a:
          on-success: [b]
        b:
          on-error: [b]
        x:
          on-success: [y]
        y:
          on-success: [x]
    """)
    # x/y only reach each other; validation accepts them because 'a' is a start task.
    lay = graph.layout(spec)
    assert {n.id for n in lay.nodes} == {"a", "b", "x", "y"}
    loop = next(e for e in lay.edges if e.source == e.target == "b")
    assert loop.back and loop.kind == "error"
    assert sum(e.back for e in lay.edges if {e.source, e.target} == {"x", "y"}) == 1


def test_edge_kinds_and_engine_commands_become_nodes():
    lay = graph.layout(
        spec_of("""
        a:
          on-success: [b]
          on-error: [fail]
          on-complete: [c]
        b: {}
        c: {}
    """)
    )
    kinds = {(e.source, e.target): e.kind for e in lay.edges}
    assert kinds == {("a", "b"): "success", ("a", "@fail"): "error", ("a", "c"): "complete"}
    fail = lay.node("@fail")
    assert fail.command and fail.name == "fail" and fail.layer == 1


def test_with_states_colours_tasks_only_and_long_names_are_shortened():
    long_name = "a_really_long_task_name_for_the_box"
    lay = graph.layout(
        spec_of(f"""
        {long_name}:
          on-success: [b]
          on-error: [fail]
        b: {{}}
    """)
    )
    coloured = lay.with_states({long_name: "SUCCESS"})
    assert coloured.node(long_name).state_class == "state-success"
    assert coloured.node("b").state_class == "state-none"
    assert coloured.node("@fail").state is None
    assert lay.node(long_name).state is None  # the original is unchanged
    label = lay.node(long_name).label
    assert label.endswith("…") and len(label) == graph.LABEL_CHARS


def test_a_reverse_workflow_draws_its_requires_edges_from_the_required_task():
    """type: reverse has no transitions: the edges are `requires` (task-defaults' too), required task first."""
    spec = parse_definition("""
version: '2.0'
rev:
  type: reverse
  task-defaults:
    requires: [setup]
  tasks:
    setup:
      action: std.noop
    build:
      action: std.noop
    test:
      action: std.noop
      requires: [build]
    deploy:
      action: std.noop
      requires: [build, test]
""")["rev"]
    lay = graph.layout(spec)
    assert lay.reverse
    assert sorted((e.source, e.target, e.kind) for e in lay.edges) == [
        ("build", "deploy", "requires"),
        ("build", "test", "requires"),
        ("setup", "build", "requires"),
        ("test", "deploy", "requires"),
    ]
    assert layers(lay) == {"setup": 0, "build": 1, "test": 2, "deploy": 3}
    assert not any(e.back for e in lay.edges)
    assert not graph.layout(spec_of("a: {}")).reverse
