"""The production start (``bin/prod``) as an operator runs it: gunicorn,
``manage.py worker`` and ``manage.py run_tracker`` as real processes,
configured by environment variables only, on a temporary SQLite file (the
SQLite pass of bin/test) or on PostgreSQL + Redis (the PostgreSQL pass). A
workflow with an HTTP worker action runs through it over real HTTP, with the
API login on; then SIGTERM stops everything cleanly."""

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench import isolation
from bench.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = """
version: '2.0'
prod_fetch:
  input: [url]
  tasks:
    call:
      action: std.http url=<% $.url %>
      publish: {status: <% task().result.status %>}
      on-success: [done]
    done:
      action: std.noop
  output: {status: <% $.status %>}
"""


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def prod_env(tmp_path):
    """The environment of a production host: a throwaway database, the ORM
    broker on SQLite and Redis on PostgreSQL, and nothing of the test settings."""
    db = isolation.create()
    env = {k: v for k, v in db.env.items() if not k.startswith(("GUST_", "PYTEST", "DJANGO_"))}
    port = free_port()
    env.update(
        GUST_SECRET_KEY=secrets.token_urlsafe(50),
        GUST_ALLOWED_HOSTS="127.0.0.1,localhost",
        GUST_BIND=f"127.0.0.1:{port}",
        GUST_PUBLIC_URL=f"http://127.0.0.1:{port}",
        GUST_VAR_DIR=str(tmp_path / "var"),
        GUST_QUEUE=f"gust-prodtest-{os.getpid()}",
        GUST_METRICS_TOKEN="metrics-" + secrets.token_urlsafe(12),
        GUST_QUERY_INTERVAL="0.5",
        # The test's outside service listens on loopback, which production refuses by default.
        GUST_EGRESS_ALLOWED_CIDRS="127.0.0.1/32",
        GUST_WORKER_STOP_TIMEOUT="10",
        GUST_WEB_GRACEFUL_TIMEOUT="10",
    )
    if db.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db.name}"
        env["GUST_BROKER"] = "orm"
    else:
        env["GUST_BROKER"] = "redis"
        env["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        if not _redis_reachable(env["REDIS_URL"]):
            db.drop()
            pytest.skip(f"the PostgreSQL pass runs on Redis, and {env['REDIS_URL']} does not answer")
    env["_url"] = f"http://127.0.0.1:{port}"
    yield env
    db.drop()


def _manage(env, *args) -> str:
    run_env = {k: v for k, v in env.items() if not k.startswith("_")}
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", *args],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, bound: float = 120.0) -> dict:
    end = time.monotonic() + bound
    while time.monotonic() < end:
        assert proc.poll() is None, f"bin/prod exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            response = requests.get(f"{url}/readyz", timeout=5)
            if response.status_code == 200:
                return response.json()
        except (requests.ConnectionError, requests.Timeout):  # still starting
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready within {bound} s:\n{log.read_text()[-3000:]}")


def _roles(proc: subprocess.Popen) -> set[str]:
    """What runs under bin/prod, by command line."""
    found = set()
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        for role, marker in (("web", "gunicorn"), ("worker", "manage.py worker"), ("tracker", "run_tracker")):
            if marker in cmd:
                found.add(role)
    return found


def _transitions(text: str) -> dict[str, float]:
    return {
        s.labels["event"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "gust_transitions_total"
    }


def test_bin_prod_needs_its_secrets(prod_env):
    env = {k: v for k, v in prod_env.items() if k not in ("GUST_SECRET_KEY", "_url")}
    done = subprocess.run(
        [str(ROOT / "bin/prod"), "web"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "GUST_SECRET_KEY must be set" in done.stderr


def test_production_start_runs_a_workflow_over_http_and_stops_cleanly(prod_env, outside_service, tmp_path):
    url = prod_env.pop("_url")
    log = tmp_path / "prod.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(ROOT / "bin/prod")],
            cwd=ROOT,
            env=prod_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert _wait_ready(url, proc, log) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        assert _roles(proc) == {"web", "worker", "tracker"}

        # Static files come from WhiteNoise after collectstatic (DEBUG is off).
        css = requests.get(f"{url}/static/admin/css/base.css", timeout=5)
        assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
        assert requests.get(f"{url}/static/no-such-file.css", timeout=5).status_code == 404

        # The API asks for a login in production.
        assert requests.get(f"{url}/v2/workflows", timeout=5).status_code == 401
        _manage(
            {
                **prod_env,
                "DJANGO_SUPERUSER_USERNAME": "ops",
                "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
                "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
            },
            "createsuperuser",
            "--noinput",
        )
        api = requests.Session()
        api.headers["X-Auth-Token"] = _manage(prod_env, "api_token", "ops")

        created = api.post(f"{url}/v2/workflows", data=WORKFLOW, headers={"Content-Type": "text/plain"}, timeout=10)
        assert created.status_code == 201, created.text
        started = api.post(
            f"{url}/v2/executions",
            timeout=10,
            json={"workflow_name": "prod_fetch", "input": {"url": f"{outside_service.url}/prod-check"}},
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]
        end = time.monotonic() + 60
        while time.monotonic() < end:
            execution = api.get(f"{url}/v2/executions/{execution_id}", timeout=10).json()
            if execution["state"] not in ("IDLE", "RUNNING"):
                break
            time.sleep(0.1)
        assert execution["state"] == "SUCCESS", execution
        assert '"status": 200' in execution["output"]
        assert [r["path"] for r in outside_service.requests] == ["/prod-check"]

        # Metrics: closed without credentials; the worker's transition is counted in
        # another process than the gunicorn worker that answers (multiprocess mode).
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        scraped = requests.get(
            f"{url}/metrics", timeout=10, headers={"Authorization": f"Bearer {prod_env['GUST_METRICS_TOKEN']}"}
        )
        assert scraped.status_code == 200
        counted = _transitions(scraped.text)
        assert counted.get("TASK_SUCCEEDED") == 2, counted
        assert counted.get("WORKFLOW_SUCCEEDED") == 1, counted
        assert 'gust_executions{state="SUCCESS"} 1.0' in scraped.text
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert rc == 0, log.read_text()[-3000:]
    assert "bin/prod: stopped" in log.read_text()
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(proc.pid, 0)


def test_the_access_log_prints_gunicorns_own_line():
    """config.gunicorn_log.AccessLog builds only the atoms the default format
    prints; the line is the one gunicorn's Logger would print."""
    import datetime
    import logging
    from types import SimpleNamespace

    from gunicorn import glogging
    from gunicorn.config import Config

    from config.gunicorn_log import AccessLog

    environ = {
        "REMOTE_ADDR": "10.0.0.7",
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/v2/executions/x?a=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": 'curl "8"',
        "HTTP_REFERER": "http://h/",
        "PATH_INFO": "/v2/executions/x",
        "QUERY_STRING": "a=1",
    }
    resp = SimpleNamespace(status="200 OK", sent=512, headers=[("Content-Type", "application/json")])
    req = SimpleNamespace(headers=[("HOST", "h")])
    took = datetime.timedelta(microseconds=1500)
    lines = []
    for cls in (glogging.Logger, AccessLog):
        log = cls(Config())
        log.now = lambda: "[02/Dec/2026:20:00:00 +0000]"
        atoms = log.atoms_wrapper_class(log.atoms(resp, req, environ, took))
        lines.append(logging.LogRecord("a", 20, "", 0, log.cfg.access_log_format, (atoms,), None).getMessage())
    assert (
        lines[0]
        == lines[1]
        == (
            '10.0.0.7 - - [02/Dec/2026:20:00:00 +0000] "GET /v2/executions/x?a=1 HTTP/1.1" '
            '200 512 "http://h/" "curl \\"8\\""'
        )
    )
    other = Config()
    other.set("access_log_format", "%(U)s %({host}i)s")
    log = AccessLog(other)
    atoms = log.atoms_wrapper_class(log.atoms(resp, req, environ, took))
    assert other.access_log_format % atoms == "/v2/executions/x h"  # any other format: gunicorn's own atoms
