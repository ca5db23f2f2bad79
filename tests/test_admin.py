"""The Django admin as an operator meets it: English names, and execution
rows that only the engine writes."""

import re

import pytest
from django.apps import apps

from core.states import State
from workflows import services
from workflows.models import ActionExecution, TaskExecution

pytestmark = pytest.mark.django_db

GUST_APPS = ("workflows", "tracker", "approvals")


def needs_es_or_ies(word: str) -> bool:
    """English words that do not take a bare "s" in the plural (process, inbox, delivery)."""
    return word.endswith(("s", "x", "z", "ch", "sh")) or re.search(r"[^aeiou]y$", word) is not None


def test_every_gust_model_has_an_english_plural():
    wrong = [
        f"{m._meta.label}: {m._meta.verbose_name_plural}"
        for app in GUST_APPS
        for m in apps.get_app_config(app).get_models()
        if m._meta.verbose_name_plural == m._meta.verbose_name + "s" and needs_es_or_ies(str(m._meta.verbose_name))
    ]
    assert wrong == []


def test_the_admin_index_reads_as_english(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Tracker processes" in html and "Webhook deliveries" in html
    assert "processs" not in html and "deliverys" not in html


WAITING = """
version: '2.0'
waiting:
  tasks:
    ask:
      action: std.async_noop
"""


@pytest.fixture
def running():
    """A RUNNING execution whose one task waits on an async action."""
    services.save_workflows(WAITING)
    ex = services.start_execution("waiting", {})
    task = TaskExecution.objects.get(workflow_execution=ex)
    return ex, task, ActionExecution.objects.get(task_execution=task)


def test_executions_tasks_and_actions_are_read_only_in_the_admin(admin_client, running):
    ex, task, action = running
    for row in running:
        base = f"/admin/workflows/{row._meta.model_name}/"
        listing = admin_client.get(base).content.decode()
        assert f'href="{base}add/"' not in listing and "delete_selected" not in listing
        assert admin_client.get(f"{base}add/").status_code == 403
        page = admin_client.get(f"{base}{row.pk}/change/")
        assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
        assert admin_client.post(f"{base}{row.pk}/change/", {"state": "SUCCESS"}).status_code == 403
        assert admin_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    # Even a superuser changed nothing: the engine still waits for the action.
    ex.refresh_from_db(), task.refresh_from_db(), action.refresh_from_db()
    assert (ex.state, task.state, action.state) == (State.RUNNING, State.RUNNING, State.RUNNING)


def test_each_admin_page_links_to_the_dashboard_where_the_operator_actions_are(admin_client, running):
    ex, task, action = running
    expected = {
        ex: f"/executions/{ex.id}/",
        task: f"/executions/{ex.id}/#task-ask",
        action: f"/executions/{ex.id}/#task-ask",
    }
    for row, url in expected.items():
        html = admin_client.get(f"/admin/workflows/{row._meta.model_name}/{row.pk}/change/").content.decode()
        assert f'<a href="{url}">' in html, row
    # and the link leads to a page with the operator buttons
    assert "Pause" in admin_client.get(f"/executions/{ex.id}/").content.decode()
