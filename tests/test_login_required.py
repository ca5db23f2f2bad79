"""With logins on (the default outside tests) the dashboard asks for one;
the API answers 401 instead, and callbacks and discovery stay open."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_on(settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}


@pytest.mark.parametrize("path", ["/", "/workflows/", "/executions/x/", "/ops/waiting/", "/tracker/"])
def test_dashboard_pages_redirect_to_the_login_page(client, auth_on, path):
    resp = client.get(path, HTTP_ACCEPT="text/html")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("accept", [None, "*/*", "text/*", "application/xml"])
def test_the_execution_list_asks_for_a_login_unless_json_is_asked_for_by_name(client, auth_on, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    resp = client.get("/", **headers)
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")


def test_open_paths_stay_open(client, auth_on):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/v2/").status_code == 200
    assert client.get("/", HTTP_ACCEPT="application/json").json()["versions"]
    assert client.get("/v2/workflows").status_code == 401


def test_a_logged_in_user_sees_the_dashboard(client, auth_on):
    get_user_model().objects.create_user("viewer", password="pw")
    client.login(username="viewer", password="pw")
    assert client.get("/", HTTP_ACCEPT="text/html").status_code == 200


def test_with_logins_off_the_dashboard_is_open(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": False}
    assert client.get("/", HTTP_ACCEPT="text/html").status_code == 200


def test_the_api_schema_needs_a_login_like_the_api(client, auth_on):
    assert client.get("/api/schema").status_code == 401
    get_user_model().objects.create_user("reader", password="pw")
    client.login(username="reader", password="pw")
    assert client.get("/api/schema").status_code == 200
