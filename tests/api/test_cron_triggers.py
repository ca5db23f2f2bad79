"""Cron triggers: /v2/cron_triggers as Mistral's CronTriggersController
(mistral/tests/unit/api/v2/test_cron_triggers.py), created as
mistral/services/triggers.py and fired as periodic.process_cron_triggers_v2
(mistral/tests/unit/engine/test_cron_trigger.py), exactly once per due time."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from workflows import triggers
from workflows.models import CronTrigger, WorkflowDefinition, WorkflowExecution
from workflows.timers import TimerLoop

pytestmark = pytest.mark.django_db

WF = """\
version: '2.0'
my_wf:
  input:
    - who: nobody
  output:
    said: <% $.said %>
  tasks:
    t:
      action: std.echo output=<% $.who %>
      publish:
        said: <% task().result %>
"""

NEEDS_INPUT = "version: '2.0'\nsome_wf:\n  input:\n    - some_var\n  tasks:\n    t: {action: std.noop}\n"


@pytest.fixture
def wf(api):
    return api.create_workflow(WF)


def post(api, **body):
    return api.post("/v2/cron_triggers", {"name": "tr", "workflow_name": "my_wf", **body})


def make_due(name="tr", minutes_ago=0):
    """The trigger's next time, moved to the past: as if that time came."""
    due = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=minutes_ago, seconds=1)
    CronTrigger.objects.filter(name=name).update(next_execution_time=due)
    return CronTrigger.objects.get(name=name)


def test_create_get_list_delete_as_mistral(api, wf):
    status, t = post(
        api,
        pattern="*/5 * * * *",
        remaining_executions=42,
        workflow_input=json.dumps({"who": "cron"}),
        workflow_params=json.dumps({"env": {"a": 1}}),
    )
    assert status == 201, t
    assert (t["name"], t["workflow_name"], t["workflow_id"], t["pattern"]) == ("tr", "my_wf", wf["id"], "*/5 * * * *")
    assert t["remaining_executions"] == 42 and t["scope"] == "private" and t["first_execution_time"] is None
    assert json.loads(t["workflow_input"]) == {"who": "cron"} and json.loads(t["workflow_params"]) == {"env": {"a": 1}}
    nxt = dt.datetime.strptime(t["next_execution_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert nxt > timezone.now() and nxt.minute % 5 == 0 and nxt.second == 0

    assert api.get("/v2/cron_triggers/tr") == (200, t)
    assert api.get(f"/v2/cron_triggers/{t['id']}") == (200, t)  # by id too
    assert [x["name"] for x in api.get("/v2/cron_triggers")[1]["cron_triggers"]] == ["tr"]
    assert api.delete(f"/v2/cron_triggers/{t['id']}")[0] == 204
    assert api.get("/v2/cron_triggers/tr") == (404, {"faultstring": "Cron trigger not found [identifier=tr]"})
    assert api.delete("/v2/cron_triggers/tr")[0] == 404


def test_a_first_time_as_the_cli_sends_it(api, wf):
    first = (timezone.now() + dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    status, t = post(api, first_execution_time=first)
    assert status == 201, t
    assert t["first_execution_time"] == t["next_execution_time"] == first + ":00"
    assert t["remaining_executions"] == 1 and t["pattern"] is None


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({}, 400, "Pattern or first_execution_time must be specified."),
        ({"pattern": "every minute"}, 400, "The specified pattern is not valid: every minute"),
        (
            {"first_execution_time": "2001-01-01 00:00"},
            400,
            "first_execution_time must be at least 1 minute in the future.",
        ),
        (
            {"first_execution_time": "4242-12-25 13:37", "remaining_executions": 3},
            400,
            "Pattern must be provided if count is superior to 1.",
        ),
        ({"first_execution_time": "tomorrow"}, 400, "time data 'tomorrow' does not match format '%Y-%m-%d %H:%M'"),
        (
            {"pattern": "* * * * *", "remaining_executions": 0},
            400,
            "remaining_executions must be an integer of at least 1, got 0",
        ),
        ({"pattern": "* * * * *", "workflow_input": "[1]"}, 400, None),
        ({"pattern": "* * * * *", "workflow_input": json.dumps({"nope": 1})}, 400, None),
        (
            {"pattern": "* * * * *", "workflow_name": "missing"},
            404,
            "Workflow not found [workflow_identifier=missing, namespace=]",
        ),
        ({"pattern": "* * * * *", "scope": "galaxy"}, 400, None),
        ({"pattern": "* " * 60}, 400, None),
    ],
)
def test_bad_triggers_are_refused_with_mistrals_messages_and_nothing_is_stored(api, wf, body, status, message):
    got, answer = post(api, **body)
    assert got == status, answer
    if message:
        assert answer["faultstring"] == message
    assert not CronTrigger.objects.exists()


def test_input_that_does_not_fit_the_workflow_is_refused(api):
    """test_trigger_create_wrong_workflow_input."""
    api.create_workflow(NEEDS_INPUT)
    status, body = api.post("/v2/cron_triggers", {"name": "x", "workflow_name": "some_wf", "pattern": "* * * * *"})
    assert status == 400 and "Invalid input" in body["faultstring"] and "some_wf" in body["faultstring"]


def test_duplicates_are_conflicts(api, wf):
    """test_post_dup, test_post_same_wf_and_input, test_trigger_create_the_same_first_time_or_count."""
    assert post(api, pattern="* * * * *")[0] == 201
    status, body = post(api, pattern="*/2 * * * *")
    assert status == 409 and "Duplicate entry for cron trigger" in body["faultstring"]
    status, body = post(api, name="other", pattern="* * * * *")
    assert status == 409
    assert post(api, name="other", pattern="* * * * *", remaining_executions=2)[0] == 201


def test_a_due_trigger_starts_one_execution_with_mistrals_description(api, wf):
    """test_start_workflow: the execution carries the trigger's id in its
    description, the input and params of the trigger, and the next time moves on."""
    post(api, pattern="* * * * *", workflow_input={"who": "cron"}, workflow_params={"env": {"x": 1}})
    before = make_due()
    assert triggers.fire_due() == 1
    ex = WorkflowExecution.objects.get()
    assert ex.state == "SUCCESS" and ex.output == {"said": "cron"} and ex.params["env"] == {"x": 1}
    assert json.loads(ex.description) == {
        "description": f"Workflow execution created by cron trigger '({before.id})'.",
        "triggered_by": {"type": "cron_trigger", "id": before.id},
    }
    after = CronTrigger.objects.get()
    assert after.next_execution_time > timezone.now() and after.remaining_executions is None
    assert triggers.fire_due() == 0  # nothing due any more


def test_a_due_time_read_by_two_processes_starts_one_execution(api, wf):
    """Two processes read the same due trigger; the compare-and-set UPDATE
    lets only the first start an execution."""
    post(api, pattern="* * * * *")
    stale = make_due()
    now = timezone.now()
    assert triggers._fire(stale, now) == 1
    assert triggers._fire(stale, now) == 0
    assert WorkflowExecution.objects.count() == 1


def test_the_count_goes_down_and_the_trigger_is_deleted_after_its_last_execution(api, wf):
    post(api, pattern="* * * * *", remaining_executions=2)
    make_due()
    assert triggers.fire_due() == 1
    assert CronTrigger.objects.get().remaining_executions == 1
    make_due()
    assert triggers.fire_due() == 1
    assert not CronTrigger.objects.exists()
    assert WorkflowExecution.objects.count() == 2


def test_times_missed_during_downtime_fire_once(api, wf):
    post(api, pattern="* * * * *")
    make_due(minutes_ago=90)  # the last 90 minutes nobody ran the timer loop
    loop = TimerLoop()
    loop.run_once()
    loop.run_once()
    assert loop.triggered == 1 and WorkflowExecution.objects.count() == 1
    assert CronTrigger.objects.get().next_execution_time > timezone.now()


def test_an_execution_that_can_not_start_is_logged_and_the_trigger_moves_on(api, wf, caplog):
    post(api, pattern="* * * * *", workflow_params={"env": "gone"})  # a named env that does not exist
    make_due()
    assert triggers.fire_due() == 0
    assert "Environment is not found: gone" in caplog.text
    assert CronTrigger.objects.get().next_execution_time > timezone.now()
    assert not WorkflowExecution.objects.exists()


def test_a_workflow_with_a_trigger_can_not_be_deleted(api, wf):
    """mistral/db/v2/sqlalchemy/api.py delete_workflow_definition."""
    _, t = post(api, pattern="* * * * *")
    status, body = api.delete("/v2/workflows/my_wf")
    assert status == 400 and body["faultstring"].startswith("Can't delete workflow that has cron triggers associated.")
    assert t["id"] in body["faultstring"]
    assert WorkflowDefinition.objects.filter(name="my_wf").exists()
