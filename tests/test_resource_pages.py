"""Dashboard pages of environments and cron triggers, through Django's test
client; data made through the services, as the API makes it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from workflows import environments, services, triggers

pytestmark = pytest.mark.django_db

WF = "version: '2.0'\nnightly:\n  tasks:\n    t: {action: std.noop}\n"


def test_the_environment_pages_list_and_show_the_variables(client):
    environments.create(
        {"name": "staging", "description": "the staging hosts", "variables": {"host": "db.staging", "port": 5432}}
    )
    page = client.get(reverse("dashboard:environments")).content.decode()
    assert "staging" in page and "the staging hosts" in page and 'href="/environments/staging/"' in page
    assert 'href="/environments/"' in page  # the navigation links to it

    page = client.get(reverse("dashboard:environment", args=["staging"])).content.decode()
    assert "db.staging" in page and "5432" in page
    assert client.get(reverse("dashboard:environment", args=["nope"])).status_code == 404


def test_the_cron_trigger_pages_show_the_next_run_and_what_it_started(client):
    services.save_workflows(WF)
    t = triggers.create({"name": "at-night", "workflow_name": "nightly", "pattern": "0 3 * * *"})
    page = client.get(reverse("dashboard:cron_triggers")).content.decode()
    assert "at-night" in page and "0 3 * * *" in page and 'href="/cron-triggers/"' in page
    assert f"{t.next_execution_time:%Y-%m-%d} 03:00:00" in page

    type(t).objects.filter(id=t.id).update(next_execution_time=timezone.now() - dt.timedelta(seconds=1))
    assert triggers.fire_due() == 1
    t.refresh_from_db()
    page = client.get(reverse("dashboard:cron_trigger", args=["at-night"])).content.decode()
    ex = services.WorkflowExecution.objects.get()
    assert f"/executions/{ex.id}/" in page
    assert f"{t.next_execution_time:%Y-%m-%d %H:%M:%S} UTC" in page
    assert client.get(reverse("dashboard:cron_trigger", args=["nope"])).status_code == 404
