"""Sub-workflows and with-items on the execution page in a real browser:
a with-items task's progress follows its items live, and a click on an
item's child execution opens it with a breadcrumb back to the parent task."""

import pytest
from playwright.sync_api import expect

from workflows import services
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOWS = """version: '2.0'
parent:
  tasks:
    fan:
      with-items: x in [1, 2, 3]
      workflow: child x=<% $.x %>
      concurrency: 2
child:
  input: [x]
  tasks:
    work:
      action: std.async_noop
"""


def test_with_items_progress_is_live_and_a_child_links_back_to_its_parent_task(open_as, people, transactional_db):
    services.save_workflows(WORKFLOWS)
    ex = services.start_execution("parent", {})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    olga = open_as("olga")
    olga.goto(f"/executions/{ex.id}/")
    progress = olga.locator("#task-fan .items-progress")
    expect(progress).to_contain_text("0 done · 2 running · 0 failed of 3 items · 1 waiting")
    expect(olga.locator("table.sub-workflows tbody tr")).to_have_count(2)

    first = WorkflowExecution.objects.filter(task_execution_id=fan.id).order_by("created_at", "id").first()
    services.complete_action(ActionExecution.objects.get(workflow_execution=first).id, "SUCCESS", 1)
    # no reload: the live region follows the engine's counters
    expect(progress).to_contain_text("1 done · 2 running · 0 failed of 3 items")
    expect(olga.locator("table.sub-workflows tbody tr")).to_have_count(3)
    expect(olga.locator("#task-fan progress")).to_have_attribute("value", "1")
    shoot(olga, "execution-with-items")

    olga.locator(f"table.sub-workflows a[href='/executions/{first.id}/']").first.click()
    expect(olga).to_have_url(f"{olga.url.split('/executions/')[0]}/executions/{first.id}/")
    crumbs = olga.locator("nav.breadcrumb")
    expect(crumbs).to_contain_text("root: parent › task fan › child")
    crumbs.get_by_text("task fan").click()
    expect(olga.locator("#task-fan .items-progress")).to_be_visible()
    assert olga.url.endswith(f"/executions/{ex.id}/#task-fan")
