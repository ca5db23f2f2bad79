"""The OpenAPI document of /v2 (api/openapi_v2.yaml) is served beside /api's
and cannot drift from the URL map: every route and method of api/urls.py is
in it, everything in it is routed, and what the views answer fits the shapes
it gives."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from django.contrib.auth import get_user_model
from django.urls import Resolver404, resolve
from django.utils.regex_helper import normalize
from drf_spectacular.validation import validate_schema

from api import urls as v2_urls
from api.schema import DOCUMENT

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
DOC = yaml.safe_load(DOCUMENT.read_text())


def routes() -> dict[str, set[str]]:
    """OpenAPI path template -> the methods its view answers, from api/urls.py
    (an optional group, as actions' ``/{namespace}``, gives both paths)."""
    found: dict[str, set[str]] = {}
    for pattern in v2_urls.urlpatterns:
        view = pattern.callback.view_class
        for template, _ in normalize(pattern.pattern.regex.pattern):
            path = "/v2" + ("/" + re.sub(r"%\((\w+)\)s", r"{\1}", template) if template else "")
            found.setdefault(path, set()).update(m for m in METHODS if hasattr(view, m))
    return found


def documented() -> dict[str, set[str]]:
    return {path: {m for m in item if m in METHODS} for path, item in DOC["paths"].items()}


def test_every_route_and_method_of_the_v2_url_map_is_in_the_document():
    assert documented() == routes()


def test_every_documented_path_reaches_the_view_that_answers_it():
    for path, methods in documented().items():
        url = re.sub(r"\{\w+\}", "some-id", path)
        try:
            view = resolve(url).func.view_class
        except Resolver404:
            pytest.fail(f"{path} is documented and not routed")
        assert {m for m in METHODS if hasattr(view, m)} == methods, path


def test_the_document_is_valid_openapi_3_with_unique_operation_ids():
    validate_schema(DOC)
    ids = [op["operationId"] for item in DOC["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))


def test_it_is_served_as_yaml_or_json_to_whoever_may_read_the_api_schema(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}
    for url in ("/api/schema", "/api/schema/v2"):
        assert client.get(url).status_code == 401, url
    client.force_login(get_user_model().objects.create_user("reader"))
    as_yaml = client.get("/api/schema/v2")
    assert as_yaml.status_code == 200 and as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(as_yaml.content) == DOC
    as_json = client.get("/api/schema/v2", {"format": "json"})
    assert as_json.status_code == 200 and as_json["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert as_json.json() == DOC
    assert "/v2/executions" in as_json.json()["paths"]


def test_with_logins_off_it_is_open_as_the_api_is(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": False}
    assert client.get("/api/schema/v2").status_code == 200


# --- the answers fit the document ----------------------------------------------------


def _json_schema(node):
    """OpenAPI 3.0's ``nullable`` in JSON Schema terms; the rest is the same."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _resolve(node):
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = DOC["components"][section][name]
    return node


def fits(resp, method: str, path: str):
    """Assert the answer's status is documented for the operation and its body
    fits the schema given for that status; returns the body."""
    op = DOC["paths"][path][method]
    assert str(resp.status_code) in op["responses"], (method, path, resp.status_code, resp.content[:300])
    documented = _resolve(op["responses"][str(resp.status_code)])
    body = json.loads(resp.content) if resp.content else None
    if "content" in documented:
        schema = documented["content"]["application/json"]["schema"]
        root = {"allOf": [_json_schema(schema)], "components": _json_schema(DOC["components"])}
        jsonschema.validate(body, root)
    else:
        assert body is None, (method, path, body)
    return body


WORKFLOWS = """\
version: '2.0'
greet:
  input: [who, {greeting: hi}]
  output: {said: <% $.said %>}
  tasks:
    say:
      action: std.echo output=<% $.greeting + ' ' + $.who %>
      publish: {said: <% task().result %>}
      on-success: [wait]
    wait:
      action: std.async_noop
"""

WORKBOOK = """\
version: '2.0'
name: shelf
actions:
  shout:
    base: std.echo
    base-input: {output: "<% $.text %>!"}
    input: [text]
workflows:
  use:
    tasks:
      one:
        action: shout text=hey
"""


def test_what_the_views_answer_fits_the_shapes_the_document_gives(client):
    def send(method, path, url=None, body=None, text=None, **params):
        url = url or path
        if text is not None:
            resp = getattr(client, method)(url, text, content_type="text/plain")
        elif body is not None:
            resp = getattr(client, method)(url, json.dumps(body), content_type="application/json")
        else:
            resp = getattr(client, method)(url, params) if params else getattr(client, method)(url)
        return fits(resp, method, path)

    assert send("get", "/v2")["uri"].endswith("/v2")
    assert send("post", "/v2/workflows/validate", text=WORKFLOWS) == {"valid": True}
    broken = "version: '2.0'\nx: {tasks: {t: {action: std.noop, on-success: [nowhere]}}}"
    assert send("post", "/v2/workflows/validate", text=broken)["valid"] is False
    send("post", "/v2/workflows", text=WORKFLOWS)
    assert "faultstring" in send("post", "/v2/workflows", text=WORKFLOWS)  # 409: it exists
    send("put", "/v2/workflows", text=WORKFLOWS)
    send("get", "/v2/workflows")
    send("get", "/v2/workflows/{identifier}", "/v2/workflows/greet")
    send("put", "/v2/workflows/{identifier}", "/v2/workflows/greet", text=WORKFLOWS)
    send("get", "/v2/workflows/{identifier}", "/v2/workflows/nope")

    ex = send("post", "/v2/executions", body={"workflow_name": "greet", "input": {"who": "ann"}})
    e = f"/v2/executions/{ex['id']}"
    send("get", "/v2/executions", limit=1)
    send("get", "/v2/executions/{execution_id}", e)
    send("put", "/v2/executions/{execution_id}", e, body={"description": "by the test"})
    tasks = send("get", "/v2/executions/{execution_id}/tasks", f"{e}/tasks")["tasks"]
    send("get", "/v2/executions/{execution_id}/report", f"{e}/report")
    send("get", "/v2/executions/{execution_id}/executions", f"{e}/executions", include_output="true")
    send("get", "/v2/tasks")
    waiting = next(t for t in tasks if t["name"] == "wait")
    send("get", "/v2/tasks/{task_id}", f"/v2/tasks/{waiting['id']}")
    send("put", "/v2/tasks/{task_id}", f"/v2/tasks/{waiting['id']}", body={"state": "RUNNING"})  # 400: not failed
    send("get", "/v2/tasks/{task_id}/executions", f"/v2/tasks/{waiting['id']}/executions")
    actions = send("get", "/v2/tasks/{task_id}/action_executions", f"/v2/tasks/{waiting['id']}/action_executions")
    a = actions["action_executions"][0]["id"]
    send("get", "/v2/action_executions")
    send("get", "/v2/action-executions/{action_id}", f"/v2/action-executions/{a}")
    done = send(
        "put",
        "/v2/action_executions/{action_id}",
        f"/v2/action_executions/{a}",
        body={"state": "SUCCESS", "output": {"ok": True}},
    )
    assert done["state"] == "SUCCESS"
    again = send(
        "post",
        "/v2/action-executions/{action_id}",
        f"/v2/action-executions/{a}",
        body={"state": "SUCCESS", "output": 1},
    )  # 409: no longer RUNNING
    assert again["state"] == "SUCCESS"
    assert send("post", "/v2/action_executions", body={"name": "std.echo", "input": {"output": "hi"}})["id"] is None
    send("get", "/v2/executions/{execution_id}", e)

    send("post", "/v2/actions/validate", text="version: '2.0'\nloud:\n  base: std.echo\n")
    send("post", "/v2/actions", text="version: '2.0'\nloud:\n  base: std.echo\n  base-input: {output: x}\n")
    send("get", "/v2/actions")
    send("get", "/v2/actions/{name}", "/v2/actions/std.echo")
    send("get", "/v2/actions/{name}", "/v2/actions/loud")
    send("delete", "/v2/actions/{name}", "/v2/actions/std.echo")  # 400: a built-in
    send("post", "/v2/workbooks/validate", text=WORKBOOK)
    send("post", "/v2/workbooks", text=WORKBOOK)
    send("get", "/v2/workbooks")
    send("get", "/v2/workbooks/{name}", "/v2/workbooks/shelf")
    send("post", "/v2/actions", "/v2/actions?namespace=team", text="version: '2.0'\nquiet:\n  base: std.noop\n")
    send("get", "/v2/actions/{name}/{namespace}", "/v2/actions/quiet/team")
    send("delete", "/v2/actions/{name}/{namespace}", "/v2/actions/quiet/team")
    send("delete", "/v2/actions/{name}", "/v2/actions/loud")
    send("delete", "/v2/workbooks/{name}", "/v2/workbooks/shelf")

    send("post", "/v2/environments", body={"name": "prod", "variables": {"url": "http://x"}})
    send("put", "/v2/environments", body={"name": "prod", "description": "production"})
    send("get", "/v2/environments")
    send("get", "/v2/environments/{name}", "/v2/environments/prod")
    send(
        "post",
        "/v2/cron_triggers",
        body={"name": "nightly", "pattern": "0 2 * * *", "workflow_name": "greet", "workflow_input": {"who": "bob"}},
    )
    send("get", "/v2/cron_triggers")
    send("get", "/v2/cron_triggers/{identifier}", "/v2/cron_triggers/nightly")
    send("delete", "/v2/cron_triggers/{identifier}", "/v2/cron_triggers/nightly")
    send("delete", "/v2/environments/{name}", "/v2/environments/prod")
    send("delete", "/v2/executions/{execution_id}", e)
    send("delete", "/v2/workflows/{identifier}", "/v2/workflows/greet")
