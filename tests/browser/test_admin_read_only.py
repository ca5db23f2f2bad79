"""The admin as a superuser meets it in a real browser: executions, tasks and
action executions are shown and cannot be added, saved or deleted (only the
engine writes them), and each page leads to the dashboard page where the
operator actions are."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from core.states import State
from workflows import services
from workflows.models import ActionExecution, TaskExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

WAITING = """version: '2.0'
waiting:
  tasks:
    ask:
      action: std.async_noop
"""


@pytest.fixture
def running(transactional_db):
    User.objects.create_superuser("root", "root@example.com", "pw")
    services.save_workflows(WAITING)
    ex = services.start_execution("waiting", {})
    task = TaskExecution.objects.get(workflow_execution=ex)
    return ex, task, ActionExecution.objects.get(task_execution=task)


def test_engine_rows_are_read_only_in_the_admin_and_link_to_their_dashboard_page(open_as, running, live_server):
    ex, task, action = running
    root = open_as("root")
    for row in running:
        base = f"/admin/workflows/{row._meta.model_name}/"
        root.goto(base)
        expect(root.locator("#result_list")).to_be_visible()
        expect(root.locator(f"a[href='{base}add/']")).to_have_count(0)  # the sidebar's Add links are other models'
        expect(root.locator("select[name=action] option[value=delete_selected]")).to_have_count(0)

        root.goto(f"{base}{row.pk}/change/")
        expect(root.locator("#content-main p.help")).to_contain_text("Read-only: only the engine changes these rows.")
        expect(root.locator(".submit-row input[name=_save], .submit-row input[name=_continue]")).to_have_count(0)
        expect(root.locator("a.deletelink")).to_have_count(0)
        expect(root.locator("#content-main input[type=text], #content-main textarea")).to_have_count(0)
        link = f"/executions/{ex.id}/" if row is ex else f"/executions/{ex.id}/#task-ask"
        expect(root.locator(".object-tools a", has_text="Open in the dashboard")).to_have_attribute("href", link)
        if row is ex:
            shoot(root, "admin-execution", docs=True, full_page=False)

        # A forged save is refused too, with the session and CSRF token of the page.
        token = next(c["value"] for c in root.context.cookies() if c["name"] == "csrftoken")
        forged = root.request.post(
            f"{base}{row.pk}/change/",
            form={"csrfmiddlewaretoken": token, "state": "SUCCESS"},
            headers={"Referer": root.url},
        )
        assert forged.status == 403

    ex.refresh_from_db(), task.refresh_from_db(), action.refresh_from_db()
    assert (ex.state, task.state, action.state) == (State.RUNNING, State.RUNNING, State.RUNNING)

    # The link leads to the page with the operator buttons.
    root.goto(f"/admin/workflows/workflowexecution/{ex.pk}/change/")
    root.locator(".object-tools a", has_text="Open in the dashboard").click()
    expect(root).to_have_url(f"{live_server.url}/executions/{ex.id}/")
    expect(root.locator("button:has-text('Pause')")).to_be_visible()
