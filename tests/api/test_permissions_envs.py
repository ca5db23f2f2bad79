"""With logins on, environments, cron triggers and run-action follow the
rule of every other /v2 door: reading needs a login, every change its
model permission, and a refused request changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.api.test_permissions import put_json, user_with
from workflows import environments, services
from workflows.models import ActionExecution, CronTrigger, Environment

pytestmark = pytest.mark.django_db

WF = "version: '2.0'\nnightly:\n  tasks:\n    t: {action: std.noop}\n"


@pytest.fixture(autouse=True)
def logins_on(settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}


def post_json(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_without_permissions_a_user_reads_but_changes_nothing(client):
    environments.create({"name": "kept", "variables": {"a": 1}})
    services.save_workflows(WF)
    client.force_login(user_with())
    assert client.get("/v2/environments").status_code == 200
    assert client.get("/v2/cron_triggers").status_code == 200
    refused = [
        post_json(client, "/v2/environments", {"name": "new", "variables": "{}"}),
        put_json(client, "/v2/environments", {"name": "kept", "variables": '{"a": 2}'}),
        client.delete("/v2/environments/kept"),
        post_json(client, "/v2/cron_triggers", {"name": "c", "workflow_name": "nightly", "pattern": "* * * * *"}),
        post_json(
            client,
            "/v2/action_executions",
            {"name": "std.echo", "input": '{"output": 1}', "params": '{"save_result": true}'},
        ),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert "workflows.add_environment" in refused[0].json()["faultstring"]
    assert list(Environment.objects.values_list("name", "variables")) == [("kept", {"a": 1})]
    assert not CronTrigger.objects.exists() and not ActionExecution.objects.exists()


def test_anonymous_requests_are_refused(client):
    assert client.get("/v2/environments").status_code == 401
    assert client.get("/v2/cron_triggers").status_code == 401


def test_with_its_permission_each_change_goes_through(client):
    services.save_workflows(WF)
    client.force_login(
        user_with(
            "add_environment",
            "change_environment",
            "delete_environment",
            "add_crontrigger",
            "delete_crontrigger",
            "add_actionexecution",
        )
    )
    assert post_json(client, "/v2/environments", {"name": "e", "variables": "{}"}).status_code == 201
    assert put_json(client, "/v2/environments", {"name": "e", "description": "d"}).status_code == 200
    assert client.delete("/v2/environments/e").status_code == 204
    assert (
        post_json(
            client, "/v2/cron_triggers", {"name": "c", "workflow_name": "nightly", "pattern": "* * * * *"}
        ).status_code
        == 201
    )
    assert client.delete("/v2/cron_triggers/c").status_code == 204
    assert post_json(client, "/v2/action_executions", {"name": "std.echo", "input": '{"output": 1}'}).status_code == 201
