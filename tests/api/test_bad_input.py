"""Bad input through /v2: every case a 400 with a precise faultstring and
nothing stored, bounded in time; an unexpected error a logged 500 that names
its request id. Runs on SQLite and on PostgreSQL (NUL characters)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.test import Client

from workflows import queue, services
from workflows.models import ActionExecution, WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

ECHO = """\
version: '2.0'
echo:
  input: [x]
  output: {x: <% $.x %>}
  tasks:
    t1:
      action: std.echo output=<% $.x %>
"""


@pytest.fixture
def echo(api):
    return api.create_workflow(ECHO)


def wf_with_vars(value: str) -> str:
    return f"version: '2.0'\nwf:\n  vars: {{v: {value}}}\n  tasks:\n    t1: {{action: std.noop}}\n"


def laughs() -> str:
    lines = ["    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "version: '2.0'\nwf:\n  vars:\n" + "\n".join(lines) + "\n  tasks:\n    t1: {action: std.noop}\n"


# --- YAML --------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_a_quick_400(api):
    started = time.process_time()
    status, body = api.post_yaml("/v2/workflows", laughs())
    assert status == 400
    assert "aliases expand to more than 10000 values" in body["faultstring"]
    assert time.process_time() - started < 2  # it expands to 9**9 values
    assert not WorkflowDefinition.objects.exists()


def test_yaml_nested_2000_deep_is_a_400(api):
    deep = (
        "version: '2.0'\nwf:\n  tasks:\n    t1:\n      action: std.noop\n      input: {x: "
        + "[" * 2000
        + "]" * 2000
        + "}\n"
    )
    status, body = api.post_yaml("/v2/workflows", deep)
    assert status == 400 and "nested deeper than 100 levels" in body["faultstring"]


@pytest.mark.parametrize(
    "value,message",
    [
        ("2026-01-01", "a date ('2026-01-01') has no JSON type; quote it to keep it as text"),
        ("!!binary aGVsbG8=", "!!binary data ('aGVsbG8=') has no JSON type"),
        ("!!set {a, b}", "a !!set has no JSON type; use a list"),
        (".nan", "wf.vars.v: nan is not a JSON number"),
        (".inf", "wf.vars.v: inf is not a JSON number"),
        ('"nul \\0 here"', "wf.vars.v: contains a NUL character"),
    ],
)
def test_yaml_values_json_has_no_type_for_are_invalid_for_validate_and_create_alike(api, value, message):
    status, body = api.post_yaml("/v2/workflows/validate", wf_with_vars(value))
    assert status == 200 and body["valid"] is False and message in body["error"]
    status, body = api.post_yaml("/v2/workflows", wf_with_vars(value))
    assert status == 400 and message in body["faultstring"]
    assert not WorkflowDefinition.objects.exists()


# --- JSON --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [900, 100_000])
def test_deeply_nested_json_is_a_400(api, echo, depth):
    body = '{"workflow_name": "echo", "input": {"x": ' + "[" * depth + "]" * depth + "}}"
    resp = api.client.post("/v2/executions", body, content_type="application/json")
    assert resp.status_code == 400
    assert "nested deeper than 100 levels" in resp.json()["faultstring"]
    assert not WorkflowExecution.objects.exists()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_a_400_in_the_body_and_in_an_input_string(api, echo, constant):
    resp = api.client.post(
        "/v2/executions", f'{{"workflow_name": "echo", "input": {{"x": {constant}}}}}', content_type="application/json"
    )
    assert resp.status_code == 400
    status, body = api.post("/v2/executions", {"workflow_name": "echo", "input": f'{{"x": {constant}}}'})
    assert status == 400 and f"input is not valid JSON: {constant} is not a JSON number" in body["faultstring"]
    assert not WorkflowExecution.objects.exists()


@pytest.mark.parametrize(
    "body,message",
    [
        ({"workflow_name": "echo", "input": {"x": "a\u0000b"}}, "body.input.x: contains a NUL character"),
        ({"workflow_name": "echo", "input": '{"x": "a\\u0000b"}'}, "input.x: contains a NUL character"),
        ({"workflow_name": "echo", "input": {"x": 1}, "description": "d\u0000"}, "body.description: contains a NUL"),
        (
            {"workflow_name": "echo", "input": {"x": "\ud800"}},
            "body.input.x: contains a NUL character or a lone surrogate",
        ),
    ],
)
def test_nul_characters_and_lone_surrogates_are_a_400(api, echo, body, message):
    status, answer = api.post("/v2/executions", body)
    assert status == 400 and message in answer["faultstring"]
    assert not WorkflowExecution.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["/v2/executions?state=%00", "/v2/executions?marker=%00", "/v2/workflows/a%00b", "/v2/workflows?namespace=%00"],
)
def test_a_nul_character_in_the_url_is_a_400(api, echo, url):
    status, body = api.get(url)
    assert status == 400 and body["faultstring"] == "NUL characters (%00) are not allowed in the URL"


def test_input_over_the_field_size_limit_is_a_400(api, echo, settings):
    settings.GUST = {**settings.GUST, "EXECUTION_FIELD_SIZE_LIMIT_KB": 4}
    status, body = api.post("/v2/executions", {"workflow_name": "echo", "input": {"x": "y" * 5000}})
    assert status == 400
    assert body["faultstring"] == (
        "Invalid input: input: larger than the size limit of 4 KB (execution_field_size_limit_kb)"
    )
    assert not WorkflowExecution.objects.exists()


def test_an_action_result_over_the_limit_is_a_400_and_the_action_keeps_running(api, settings):
    api.create_workflow("version: '2.0'\nwait:\n  tasks:\n    t1: {action: std.async_noop}\n")
    ex = api.start("wait")
    action = ActionExecution.objects.get(workflow_execution_id=ex["id"])
    settings.GUST = {**settings.GUST, "EXECUTION_FIELD_SIZE_LIMIT_KB": 1}
    status, body = api.put(f"/v2/action_executions/{action.id}", {"state": "SUCCESS", "output": "z" * 2000})
    assert status == 400 and "output: larger than the size limit of 1 KB" in body["faultstring"]
    action.refresh_from_db()
    assert action.state == "RUNNING"


# --- expressions -------------------------------------------------------------


@pytest.mark.parametrize(
    "expr,message",
    [
        ("<% float('nan') %>", "the result: nan is not a JSON number"),
        ("{{ range }}", "the result: a function is not a JSON value"),
        ("{{ 'a' * 100000000 }}", "the result of '*' would be larger than the size limit of 1024 KB"),
    ],
)
def test_an_expression_result_that_can_not_be_stored_fails_the_task_not_the_request(api, expr, message):
    api.create_workflow(f"version: '2.0'\nodd:\n  tasks:\n    t1:\n      action: std.echo output=\"{expr}\"\n")
    ex = api.start("odd")
    assert ex["state"] == "ERROR"
    assert message in ex["state_info"]


def test_a_tight_loop_answers_at_the_step_limit_and_can_be_cancelled(
    api, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.GUST = {**settings.GUST, "ENGINE_STEPS_PER_TRANSACTION": 30}
    queued = []
    monkeypatch.setattr(queue, "continue_later", queued.append)
    api.create_workflow("""\
version: '2.0'
spin:
  tasks:
    first:
      action: std.noop
      on-success: [again]
    again:
      action: std.noop
      on-success: [again]
""")
    with django_capture_on_commit_callbacks(execute=True):
        ex = api.start("spin")
    assert ex["state"] == "RUNNING" and queued == [ex["id"]]
    services.continue_execution(ex["id"])
    status, body = api.put(f"/v2/executions/{ex['id']}", {"state": "CANCELLED"})
    assert status == 200 and body["state"] == "CANCELLED"
    services.continue_execution(ex["id"])
    assert WorkflowExecution.objects.get(id=ex["id"]).state == "CANCELLED"


# --- lists -------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["1" + "0" * 30, "0", "-1", "1001", "²"])
def test_a_limit_out_of_range_is_a_400(api, limit):
    status, body = api.get("/v2/executions", limit=limit)
    assert status == 400 and body["faultstring"].startswith("limit must be an integer from 1 to 1000")


def test_a_list_without_limit_returns_the_default_page_with_a_next_link(api, echo, settings):
    settings.GUST = {**settings.GUST, "API_LIST_DEFAULT_LIMIT": 2}
    for i in range(3):
        api.start("echo", {"x": i})
    status, body = api.get("/v2/executions")
    assert status == 200 and len(body["executions"]) == 2 and "limit=" not in body["next"]
    assert "marker=" in body["next"]


# --- unexpected errors -------------------------------------------------------


def test_an_unexpected_error_is_logged_with_its_traceback_under_the_request_id(echo, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(services, "start_execution", broken)
    client = Client(raise_request_exception=False)
    resp = client.post(
        "/v2/executions",
        json.dumps({"workflow_name": "echo", "input": {"x": 1}}),
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-test-42",
    )
    assert resp.status_code == 500
    assert resp.json() == {"faultstring": "Internal error; the server log has the details under request id req-test-42"}
    assert resp["X-Request-ID"] == "req-test-42"
    (record,) = [r for r in caplog.records if r.name == "gust.request"]
    assert record.levelno == logging.ERROR and "[req-test-42] POST /v2/executions failed" in record.getMessage()
    assert record.exc_info and "the disk is on fire" in str(record.exc_info[1])


def test_every_answer_carries_a_request_id(api):
    resp = api.client.get("/v2/executions")
    assert resp["X-Request-ID"].startswith("req-") and resp["x-openstack-request-id"] == resp["X-Request-ID"]


def test_a_mapping_key_expression_that_is_not_a_key_fails_the_task_not_the_request(client):
    wf = "version: '2.0'\nk:\n  tasks:\n    t:\n      action: std.echo\n      input:\n        output:\n          <% {a => 1} %>: 1\n"
    assert client.post("/v2/workflows", wf, content_type="text/plain").status_code == 201
    r = client.post("/v2/executions", {"workflow_name": "k"}, content_type="application/json")
    assert r.status_code == 201, r.content
    assert r.json()["state"] == "ERROR" and "a mapping key must be a string or a number" in r.json()["state_info"]


@pytest.mark.parametrize("path", ["/v2/workflows", "/v2/workflows/validate"])
def test_a_definition_with_control_characters_is_a_400_not_a_500(client, path):
    r = client.post(path, "version: '2.0'\nw\x8a: {tasks: {t: {action: std.noop}}}\n", content_type="text/plain")
    assert r.status_code in (200, 400), r.content
    body = r.json()
    assert "special characters are not allowed" in (body.get("faultstring") or body.get("error"))
    assert not WorkflowDefinition.objects.exists()


@pytest.mark.parametrize("method", ["post", "put"])
def test_an_empty_or_random_definition_body_is_a_400(client, method):
    for body in ["", "7]HJ9\U00010bf5\xa6"]:
        r = getattr(client, method)("/v2/workflows", body, content_type="text/plain")
        assert r.status_code == 400, (body, r.content)
