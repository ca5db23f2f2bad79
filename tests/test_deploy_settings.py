"""A default install is not forgeable: no shared secret key, and production
settings pass Django's deployment checks."""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_value(tmp_path, expr: str, **env) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUST_")} | {"GUST_VAR_DIR": str(tmp_path), **env}
    code = f"import config.settings as s; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_without_a_configured_key_a_random_one_is_made_once_and_kept_private(tmp_path):
    first = settings_value(tmp_path, "s.SECRET_KEY")
    second = settings_value(tmp_path, "s.SECRET_KEY")
    assert first == second and len(first) >= 50
    assert "insecure" not in first and first != "dev-only-insecure-key-change-me"
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other_install = tmp_path / "other"
    assert settings_value(other_install, "s.SECRET_KEY") != first


def test_a_configured_key_is_used_and_nothing_is_written(tmp_path):
    assert settings_value(tmp_path, "s.SECRET_KEY", GUST_SECRET_KEY="k" * 60) == "k" * 60
    assert not (tmp_path / "secret_key").exists()


def test_production_settings_pass_the_deployment_checks(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUST_") and k != "DJANGO_SETTINGS_MODULE"}
    env |= {"GUST_VAR_DIR": str(tmp_path), "GUST_TLS": "1", "GUST_ALLOWED_HOSTS": "gust.example.com"}
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_postgresql_sessions_end_when_their_host_dies(tmp_path):
    """A dead host's session must not keep its locks: an idle-in-transaction
    timeout, and TCP timeouts for a host that died mid-request (no timer runs
    then); the session is named for its Gust process."""
    url = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"}
    expr = "s.DATABASES['default']['OPTIONS']"
    opts = settings_value(tmp_path, expr, **url)
    assert (
        "-c idle_in_transaction_session_timeout=60000 -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 "
        "-c tcp_keepalives_count=3 -c tcp_user_timeout=60000"
    ) in opts and "'application_name': 'gust web'" in opts
    opts = settings_value(tmp_path, expr, GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT="0", GUST_PG_TCP_KEEPALIVE="0", **url)
    assert "options" not in opts
