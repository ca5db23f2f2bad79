"""The API asks for a login by default; the mistral CLI passes a token."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tracker import services as tracker_services  # noqa: F401  (callbacks stay open: checked below)
from workflows import callbacks, services
from workflows.models import ActionExecution

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_on(settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}


@pytest.fixture
def token():
    user = get_user_model().objects.create_user("ops", password="pw")
    return Token.objects.create(user=user).key


def test_without_credentials_the_api_answers_401_with_a_faultstring(client, auth_on):
    resp = client.get("/v2/workflows")
    assert resp.status_code == 401
    assert "credentials were not provided" in resp.json()["faultstring"]
    assert client.get("/v2/").status_code == 200  # discovery stays public


def test_an_x_auth_token_or_a_token_header_is_accepted(client, auth_on, token):
    assert client.get("/v2/workflows", HTTP_X_AUTH_TOKEN=token).status_code == 200
    assert client.get("/v2/workflows", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    bad = client.get("/v2/workflows", HTTP_X_AUTH_TOKEN="nope")
    assert bad.status_code == 401 and bad.json()["faultstring"] == "Invalid token."


def test_signed_callback_urls_need_no_login(client, auth_on):
    services.save_workflows("version: '2.0'\nw:\n  tasks:\n    a: {action: std.async_noop}\n")
    ex = services.start_execution("w")
    action = ActionExecution.objects.get(workflow_execution=ex)
    path = "/api/callbacks/" + callbacks.make_token(action.id, 1)
    resp = client.put(path, {"state": "SUCCESS", "output": 1}, content_type="application/json")
    assert resp.status_code == 200


def test_api_token_command_prints_a_stable_token(capsys):
    get_user_model().objects.create_user("cli")
    call_command("api_token", "cli")
    first = capsys.readouterr().out.strip()
    call_command("api_token", "cli")
    assert capsys.readouterr().out.strip() == first
    call_command("api_token", "cli", "--rotate")
    assert capsys.readouterr().out.strip() != first


@pytest.mark.cli
@pytest.mark.django_db(transaction=True)
def test_the_mistral_cli_logs_in_through_gusts_keystone_shim(mistral, live_server, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}
    get_user_model().objects.create_user("cli-user", password="s3cret")
    refused = mistral("workflow-list", fail=True)
    assert "Authentication credentials were not provided" in refused.stderr
    mistral.env.update(OS_AUTH_URL=f"{live_server.url}/identity/v3", OS_USERNAME="cli-user", OS_PASSWORD="wrong")
    assert "wrong user name or password" in mistral("workflow-list", fail=True).stderr
    mistral.env["OS_PASSWORD"] = "s3cret"
    assert mistral.value("workflow-list", "-c", "Name") == ""
    key = Token.objects.get(user__username="cli-user").key
    del mistral.env["OS_USERNAME"], mistral.env["OS_PASSWORD"]
    mistral.env["OS_AUTH_TOKEN"] = key
    assert mistral.value("workflow-list", "-c", "Name") == ""


@pytest.mark.django_db
def test_a_completion_without_a_login_says_how_to_complete(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}
    resp = client.put("/v2/action-executions/abc", {"state": "SUCCESS", "output": 3}, content_type="application/json")
    assert resp.status_code == 401
    assert "Gust-Callback-URL" in resp.json()["faultstring"] and "X-Auth-Token" in resp.json()["faultstring"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v2/no-such-thing", "/v2/executions/x/nope", "/api/nope", "/identity/v3/nope"])
def test_unknown_api_paths_answer_json_404s(client, path):
    resp = client.get(path)
    assert resp.status_code == 404 and resp["Content-Type"] == "application/json"
    assert "Not found" in resp.json()["faultstring"]


def test_a_logged_in_browser_uses_the_api_with_its_session_and_its_csrf_rule(auth_on, token):
    """The API skips the session layers only for a request without a session
    cookie (workflows.middleware.sessionless); the dashboard's own calls
    carry one and are authenticated by it, with DRF's CSRF check."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.get(username="ops"))
    assert browser.get("/v2/workflows").status_code == 200
    refused = browser.post("/v2/workflows", data="version: '2.0'\n", content_type="text/plain")
    assert refused.status_code == 403 and "CSRF" in refused.json()["faultstring"]
    assert Client().get("/v2/workflows").status_code == 401  # the same request without the cookie


def test_a_request_without_a_session_cookie_gets_none(client, auth_on, token):
    resp = client.get("/v2/workflows", HTTP_X_AUTH_TOKEN=token)
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert resp["X-Request-ID"].startswith("req-") and resp["X-Frame-Options"] == "DENY"
    assert client.get("/accounts/login/").cookies.get("csrftoken")  # pages still get theirs
