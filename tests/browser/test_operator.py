"""The operator's side in a real browser: the execution list follows new
runs live, the waiting view lists what waits, and operator actions (pause,
resume, complete by hand) land in the audit log."""

import pytest
from playwright.sync_api import expect

from approvals import services as approvals
from approvals.models import Approval
from core.states import State
from ops.models import OperatorAction
from workflows import services
from workflows.models import ActionExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOWS = """version: '2.0'
purchase:
  input:
    - item
  tasks:
    ask:
      action: gust.approval
      input:
        title: Buy <% $.item %>?
        assignees: [alice]
        expires_in: 3600
        form: {type: object, properties: {amount: {type: integer, default: 1}}}
      on-success: [done]
    done:
      action: std.noop
outside:
  tasks:
    call:
      action: std.async_noop
      on-success: [done]
    done:
      action: std.noop
"""


@pytest.fixture
def workflows(transactional_db):
    services.save_workflows(WORKFLOWS)


def test_the_execution_list_shows_new_runs_and_their_end_without_reloading(open_as, people, workflows):
    olga = open_as("olga")
    olga.goto("/")
    olga.evaluate("window.__notReloaded = true")
    ex = services.start_execution("outside", {})
    row = olga.locator("tr", has=olga.locator(f"a[href='/executions/{ex.id}/']"))
    expect(row.locator(".badge")).to_have_text("RUNNING")
    services.complete_action(ActionExecution.objects.get(workflow_execution_id=ex.id).id, State.SUCCESS, "ok")
    expect(row.locator(".badge")).to_have_text("SUCCESS")
    assert olga.evaluate("window.__notReloaded") is True
    shoot(olga, "executions", docs=True)


def test_pause_answer_while_paused_resume_and_the_audit_log(open_as, people, workflows):
    ex = services.start_execution("purchase", {"item": "chairs"})
    olga = open_as("olga")
    olga.goto("/ops/waiting/")
    expect(olga.locator("#waiting")).to_contain_text("gust.approval")
    expect(olga.locator("#waiting .chip.mode-approval")).to_have_text("approval")
    shoot(olga, "waiting", docs=True)

    olga.goto(f"/executions/{ex.id}/")
    olga.click("button:has-text('Pause')")
    expect(olga.locator("#execution-state")).to_have_text("PAUSED")
    expect(olga.locator(".messages")).to_contain_text("Paused execution of purchase.")
    expect(olga.locator("#audit-trail")).to_contain_text("olga")
    expect(olga.locator("#audit-trail")).to_contain_text("Paused execution of purchase")

    # Alice answers while it is paused: accepted, applied when it resumes.
    approvals.answer(Approval.objects.get().id, people["alice"], "approve", data={})
    expect(olga.locator("tr.task-row", has_text="ask").locator(".badge")).to_have_text("SUCCESS")
    expect(olga.locator("#execution-state")).to_have_text("PAUSED")
    olga.click("button:has-text('Resume')")
    expect(olga.locator("#execution-state")).to_have_text("SUCCESS")
    expect(olga.locator("g.node.state-success", has_text="done")).to_be_visible()
    shoot(olga, "execution-audit", docs=True)

    olga.goto("/ops/audit/")
    expect(olga.locator("#audit tbody tr")).to_have_count(2)
    expect(olga.locator("#audit")).to_contain_text("Resumed execution of purchase")
    assert list(OperatorAction.objects.values_list("kind", flat=True)) == ["resume", "pause"]


def test_complete_an_action_by_hand_from_the_waiting_view(open_as, people, workflows):
    ex = services.start_execution("outside", {})
    olga = open_as("olga")
    olga.goto("/ops/waiting/")
    olga.click("a:has-text('Complete by hand')")
    olga.fill("#id_output", "{not json")
    olga.click("button:has-text('Complete')")
    expect(olga.locator(".field-error")).to_contain_text("Not valid JSON")
    olga.fill("#id_output", '{"done": "by hand"}')
    shoot(olga, "complete-by-hand")
    olga.click("button:has-text('Complete')")
    expect(olga.locator(".messages")).to_contain_text("Completed std.async_noop (call) as SUCCESS")
    expect(olga.locator("#live")).to_contain_text("Nothing is waiting")  # back on the waiting view
    entry = OperatorAction.objects.get()
    assert (entry.execution_id, entry.payload) == (ex.id, {"state": "SUCCESS", "output": {"done": "by hand"}})
    olga.goto("/ops/audit/")
    expect(olga.locator("#audit")).to_contain_text('{"output": {"done": "by hand"}, "state": "SUCCESS"}')
