"""The execution page in a real browser: the timeline beside the graph, pan
and zoom of a large graph, a click on a task showing its details, and long
outputs folding; each survives the page's live refreshes."""

import re

import pytest
from playwright.sync_api import expect

from core.states import State
from workflows import services
from workflows.models import ActionExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

FAN = 40  # wide enough that the fitted graph is drawn smaller than its natural size

WORKFLOWS = f"""version: '2.0'
release:
  input:
    - items
  tasks:
    build:
      action: std.echo
      input:
        output: <% $.items %>
      publish:
        artifacts: <% task().result %>
      on-success: [unit_tests, api_tests, ui_tests]
    unit_tests:
      action: std.noop
      on-success: [deploy]
    api_tests:
      action: std.noop
      on-success: [deploy]
    ui_tests:
      action: std.async_noop
      on-success: [deploy]
    deploy:
      join: all
      action: std.noop
wide:
  tasks:
    start:
      action: std.async_noop
      on-success: [{", ".join(f"t{i:02d}" for i in range(FAN))}]
{"".join(f"    t{i:02d}:{chr(10)}      action: std.noop{chr(10)}" for i in range(FAN))}"""

ITEMS = [{"name": f"artifact-{i}", "sha": f"{i:040x}"} for i in range(30)]  # a result of 100+ lines


@pytest.fixture
def release(transactional_db):
    services.save_workflows(WORKFLOWS)
    return services.start_execution("release", {"items": ITEMS})


def finish_ui_tests(ex):
    action = ActionExecution.objects.get(workflow_execution_id=ex.id, name="std.async_noop")
    services.complete_action(action.id, State.SUCCESS, {"passed": 120})


def view_box(page) -> list[float]:
    return [float(v) for v in page.locator("svg.graph").get_attribute("viewBox").split()]


def test_the_timeline_beside_the_graph_draws_a_running_task_to_now(open_as, people, release):
    olga = open_as("olga")
    olga.goto(f"/executions/{release.id}/")
    graph_card = olga.locator(".graph-and-timeline > .card").nth(0).bounding_box()
    timeline_card = olga.locator(".graph-and-timeline > .card").nth(1).bounding_box()
    assert timeline_card["x"] >= graph_card["x"] + graph_card["width"]  # beside, not below
    assert abs(timeline_card["y"] - graph_card["y"]) < 2
    rows = olga.locator("#timeline .tl-row[data-task]")
    # build, unit_tests, api_tests, ui_tests, each with its action, and deploy waiting for its join since it was made.
    expect(rows).to_have_count(9)
    expect(olga.locator("#timeline .tl-row.tl-task[data-task=deploy] .tl-bar")).to_have_class(
        re.compile(r"state-waiting.*tl-running")
    )
    running = olga.locator("#timeline .tl-row.tl-action[data-task=ui_tests] .tl-bar")
    expect(running).to_have_class(re.compile(r"state-running.*tl-running"))
    track = olga.locator("#timeline .tl-row.tl-action[data-task=ui_tests] .tl-track").bounding_box()
    bar = running.bounding_box()
    assert bar["x"] + bar["width"] == pytest.approx(track["x"] + track["width"], abs=2)  # drawn up to now
    shoot(olga, "execution-timeline", docs=True)

    finish_ui_tests(release)
    expect(olga.locator("#execution-state")).to_have_text("SUCCESS")
    expect(olga.locator("#timeline .tl-bar.tl-running")).to_have_count(0)
    expect(olga.locator("#timeline .tl-row[data-task=deploy]")).to_have_count(2)


def test_a_large_graph_fits_pans_and_zooms_and_keeps_its_view_across_refreshes(open_as, people, transactional_db):
    services.save_workflows(WORKFLOWS)
    ex = services.start_execution("wide", {})
    olga = open_as("olga")
    olga.goto("/workflows/wide/")  # the workflow's own page pans and zooms too (no task panel there)
    expect(olga.locator(".graph-tools")).to_be_visible()
    assert float(olga.locator("[data-graph]").get_attribute("data-scale")) < 1
    olga.goto(f"/executions/{ex.id}/")
    wrap = olga.locator("[data-graph]")
    expect(olga.locator(".graph-tools")).to_be_visible()
    fitted = float(wrap.get_attribute("data-scale"))
    assert fitted < 1  # 41 tasks on 7 columns and 7 rows do not fit the card at actual size
    # Fitted: every node is inside the viewport.
    box = wrap.bounding_box()
    for node in olga.locator("svg.graph g.node rect").all():
        n = node.bounding_box()
        assert box["x"] - 1 <= n["x"] and n["x"] + n["width"] <= box["x"] + box["width"] + 1
        assert box["y"] - 1 <= n["y"] and n["y"] + n["height"] <= box["y"] + box["height"] + 1

    olga.click(".graph-tools [data-zoom=in]")
    assert float(wrap.get_attribute("data-scale")) == pytest.approx(fitted * 1.25, rel=1e-3)
    olga.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    olga.mouse.wheel(0, -300)
    expect(wrap).not_to_have_attribute("data-scale", f"{fitted * 1.25:.3f}")
    zoomed = float(wrap.get_attribute("data-scale"))
    assert zoomed > fitted * 1.25

    before = view_box(olga)
    olga.mouse.move(box["x"] + 200, box["y"] + 100)
    olga.mouse.down()
    olga.mouse.move(box["x"] + 120, box["y"] + 60, steps=5)
    olga.mouse.up()
    after = view_box(olga)
    assert after[0] == pytest.approx(before[0] + 80 / zoomed, abs=0.5)  # dragged left: the view moves right
    assert after[1] == pytest.approx(before[1] + 40 / zoomed, abs=0.5)
    expect(olga.locator("#task-panel")).to_be_hidden()  # a drag that ends on a node is not a click

    # A live refresh (the execution changes) keeps where the user was looking.
    services.change_execution_state(ex.id, State.PAUSED.value)
    expect(olga.locator("#execution-state")).to_have_text("PAUSED")
    assert view_box(olga) == after
    olga.click(".graph-tools [data-zoom=fit]")
    assert float(wrap.get_attribute("data-scale")) == pytest.approx(fitted, rel=1e-3)
    olga.click(".graph-tools [data-zoom=actual]")
    expect(wrap).to_have_attribute("data-scale", "1.000")
    wrap.focus()
    olga.keyboard.press("0")
    assert float(wrap.get_attribute("data-scale")) == pytest.approx(fitted, rel=1e-3)
    # A narrower window fits the graph again, to the narrower card.
    olga.set_viewport_size({"width": 1120, "height": 900})  # still two columns: a narrower graph card
    expect(wrap).not_to_have_attribute("data-scale", f"{fitted:.3f}")
    assert float(wrap.get_attribute("data-scale")) < fitted


def test_a_click_on_a_node_or_a_bar_shows_that_task_and_follows_it_live(open_as, people, release):
    olga = open_as("olga")
    olga.goto(f"/executions/{release.id}/")
    panel = olga.locator("#task-panel")
    expect(panel).to_be_hidden()
    olga.locator("svg.graph g.node[data-task=ui_tests]").click()
    expect(panel).to_be_visible()
    expect(panel.locator(".panel-title")).to_have_text("ui_tests")
    expect(panel.locator(".badge").first).to_have_text("RUNNING")
    expect(panel).to_contain_text("std.async_noop")
    expect(olga.locator("svg.graph g.node.selected")).to_have_attribute("data-task", "ui_tests")
    assert olga.url.endswith(f"/executions/{release.id}/")  # shown in place, no jump to the table

    finish_ui_tests(release)
    expect(panel.locator(".badge").first).to_have_text("SUCCESS")  # the panel follows the live page
    expect(panel).to_contain_text("passed")

    olga.locator("#timeline .tl-row.tl-task[data-task=build] .tl-bar").click()
    expect(panel.locator(".panel-title")).to_have_text("build")
    expect(olga.locator("#timeline .tl-row.selected[data-task=build]")).to_have_count(2)  # the task and its action
    olga.locator("svg.graph g.node[data-task=deploy]").click()
    expect(panel.locator(".panel-title")).to_have_text("deploy")
    shoot(olga, "execution-task-panel", docs=True)
    panel.locator(".panel-close").click()
    expect(panel).to_be_hidden()
    expect(olga.locator("svg.graph g.node.selected")).to_have_count(0)


def test_long_outputs_fold_and_stay_open_across_refreshes(open_as, people, release):
    olga = open_as("olga")
    olga.goto(f"/executions/{release.id}/")
    published = olga.locator("tr.task-row#task-build td").nth(6)
    block = published.locator("pre.json")
    toggle = published.locator(".fold-toggle")
    lines = len(block.inner_text().splitlines())
    assert lines > 100
    expect(toggle).to_have_text(f"show all ({lines} lines)")
    expect(block).to_have_class(re.compile("folded"))
    folded_height = block.bounding_box()["height"]
    assert folded_height < 200
    # A short block does not fold: the execution's params are one line.
    expect(olga.locator("pre.json", has_text="{}").first).not_to_have_class(re.compile("folded"))

    toggle.click()
    expect(toggle).to_have_text("show less")
    assert block.bounding_box()["height"] > 4 * folded_height
    # A result in a closed <details> is measured when it opens.
    result = olga.locator("tr.task-row#task-build td").nth(7)
    result.locator("summary").click()
    expect(result.locator(".fold-toggle")).to_have_text(re.compile(r"show all \(\d+ lines\)"))
    shoot(olga, "execution-folding")

    finish_ui_tests(release)
    expect(olga.locator("#execution-state")).to_have_text("SUCCESS")
    expect(published.locator(".fold-toggle")).to_have_text("show less")  # still open after the refresh
    published.locator(".fold-toggle").click()
    expect(published.locator(".fold-toggle")).to_have_text(f"show all ({lines} lines)")
