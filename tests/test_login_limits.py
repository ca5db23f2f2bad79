"""Guessing passwords is slow: failed logins are counted per user name and
address on every login door, logged, and answered 429 past the limit; the
first admin has no well-known password."""

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db

LIMIT = 5  # GUST_LOGIN_FAILURE_LIMIT's default


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="right-password")


def keystone(client, password, username="alice", address="10.0.0.1"):
    body = {
        "auth": {"identity": {"methods": ["password"], "password": {"user": {"name": username, "password": password}}}}
    }
    return client.post("/identity/v3/auth/tokens", body, content_type="application/json", REMOTE_ADDR=address)


def login_page(client, password, username="alice", address="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_keystone_stand_in_locks_a_user_and_address_out_after_the_limit(client, alice, caplog):
    with caplog.at_level(logging.WARNING, logger="axes"):
        codes = [keystone(client, f"guess-{n}").status_code for n in range(LIMIT + 3)]
    assert codes[: LIMIT - 1] == [401] * (LIMIT - 1)
    assert set(codes[LIMIT:]) == {429}
    locked = keystone(client, "right-password")  # even the right password, until the cool-off ends
    assert locked.status_code == 429 and "Too many failed logins" in locked.json()["faultstring"]
    assert "alice" in caplog.text  # failed logins are logged
    assert keystone(client, "right-password", address="10.0.0.2").status_code == 201  # another address is not locked


def test_the_login_page_locks_out_after_the_limit(client, alice):
    codes = [login_page(client, f"guess-{n}").status_code for n in range(LIMIT + 1)]
    assert codes[0] == 200 and codes[-1] == 429  # 200: the form again, with an error
    assert login_page(client, "right-password").status_code == 429
    assert login_page(client, "right-password", address="10.0.0.9").status_code == 302


def test_a_successful_login_resets_the_count(client, alice):
    for n in range(LIMIT - 1):
        keystone(client, f"guess-{n}")
    assert keystone(client, "right-password").status_code == 201
    assert all(keystone(client, f"again-{n}").status_code == 401 for n in range(LIMIT - 1))


def test_the_first_admin_gets_a_random_password_printed_once(capsys, monkeypatch, client):
    monkeypatch.delenv("GUST_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = re.search(r"password '([^']+)'", out).group(1)
    assert password != "admin" and len(password) >= 16
    assert keystone(client, "admin", username="admin").status_code == 401
    assert keystone(client, password, username="admin").status_code == 201
    call_command("ensure_admin")  # an admin exists: nothing is made, nothing printed
    assert capsys.readouterr().out == ""


def test_the_first_admin_takes_gust_admin_password_when_set(capsys, monkeypatch, client):
    monkeypatch.setenv("GUST_ADMIN_PASSWORD", "chosen-by-me")
    call_command("ensure_admin")
    assert "chosen-by-me" not in capsys.readouterr().out
    assert keystone(client, "chosen-by-me", username="admin").status_code == 201
