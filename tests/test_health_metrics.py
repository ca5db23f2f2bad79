"""/healthz, /readyz and /metrics: what a load balancer and a Prometheus
scraper see, without and with a login, and when a dependency is down."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from config import health
from ops import metrics
from tracker.models import TrackedAction
from workflows import services
from workflows.models import WorkflowExecution

pytestmark = pytest.mark.django_db

TWO_STEPS = """
version: '2.0'
two_steps:
  tasks:
    a: {action: std.noop, on-success: [b]}
    b: {action: std.noop}
"""


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


# -- probes ------------------------------------------------------------------


@override_settings(GUST={**django_settings.GUST, "API_AUTH": True})
def test_probes_answer_without_a_login(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert response["Cache-Control"].startswith("max-age=0")


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_readyz_is_503_with_the_reason_when_the_database_is_down(client, monkeypatch):
    def broken():
        raise ConnectionRefusedError("password=secret host=db")

    monkeypatch.setattr(health, "database_reachable", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "unreachable (ConnectionRefusedError)", "broker": "ok"}
    assert body["reason"] == "database: unreachable (ConnectionRefusedError)"
    assert "secret" not in response.content.decode()


def test_readyz_is_503_when_the_redis_broker_does_not_answer(client, settings):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": f"redis://127.0.0.1:{port}/0"}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"].startswith("unreachable (")


@override_settings(GUST_TLS=True, SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=[r"^healthz$", r"^readyz$"])
def test_probes_are_not_redirected_to_https(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/v2/workflows").status_code == 301


# -- metrics -----------------------------------------------------------------


def test_metrics_count_transitions_and_executions_by_state(client, django_capture_on_commit_callbacks):
    before = scrape(client)
    services.save_workflows(TWO_STEPS)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            services.start_execution("two_steps", {})
    after = scrape(client)

    def delta(event, scope="task"):
        key = ("gust_transitions_total", (("event", event), ("scope", scope)))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("TASK_SUCCEEDED") == 6
    assert delta("WORKFLOW_SUCCEEDED", "workflow") == 3
    assert (
        after[("gust_executions", (("state", "SUCCESS"),))]
        == WorkflowExecution.objects.filter(state="SUCCESS").count()
        == 3
    )
    assert after[("gust_executions", (("state", "RUNNING"),))] == 0
    assert after[("gust_worker_queue_depth", ())] == 0
    assert after[("gust_tracker_lag_seconds", ())] == 0


def test_a_rolled_back_change_is_not_counted(client, django_capture_on_commit_callbacks):
    from django.db import transaction

    services.save_workflows(TWO_STEPS)
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.start_execution("two_steps", {})
            raise RuntimeError("roll back")
    assert not [c for c in callbacks if "metrics" in getattr(c, "__module__", "")]
    key = ("gust_transitions_total", (("event", "TASK_SUCCEEDED"), ("scope", "task")))
    assert scrape(client).get(key, 0) == before.get(key, 0)


def test_tracker_lag_is_the_age_of_the_oldest_due_item(client):
    from datetime import timedelta

    from django.utils import timezone

    services.save_workflows("version: '2.0'\nwait:\n  tasks:\n    t: {action: std.async_noop}\n")
    services.start_execution("wait", {})
    services.start_execution("wait", {})
    now = timezone.now()
    rows = list(TrackedAction.objects.all())
    if len(rows) < 2:  # std.async_noop is not tracked by default: track both actions by hand
        from workflows.models import ActionExecution

        for a in ActionExecution.objects.filter(name="std.async_noop"):
            TrackedAction.objects.get_or_create(action=a, defaults={"next_query_at": now})
    TrackedAction.objects.update(next_query_at=now + timedelta(seconds=60))
    first = TrackedAction.objects.first()
    TrackedAction.objects.filter(id=first.id).update(next_query_at=now - timedelta(seconds=90))
    got = scrape(client)
    assert got[("gust_tracker_due_items", ())] == 1
    assert 90 <= got[("gust_tracker_lag_seconds", ())] < 150


def test_a_failing_source_leaves_the_rest_of_the_scrape(client, monkeypatch):
    def down():
        raise ConnectionError("broker down")
        yield  # pragma: no cover

    monkeypatch.setattr(metrics, "_queue_depth", down)
    got = scrape(client)
    assert ("gust_worker_queue_depth", ()) not in got
    assert ("gust_executions", (("state", "SUCCESS"),)) in got


@override_settings(GUST={**django_settings.GUST, "API_AUTH": True}, OPS={"METRICS_TOKEN": "s3cret-metrics"})
def test_metrics_need_a_login_a_token_or_the_bearer(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_X_AUTH_TOKEN="not-a-token").status_code == 401
    scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-metrics")

    user = get_user_model().objects.create_user("scraper", password="pw-for-tests-1")
    scrape(client, HTTP_X_AUTH_TOKEN=Token.objects.create(user=user).key)
    client.force_login(user)
    scrape(client)


@override_settings(GUST={**django_settings.GUST, "API_AUTH": False}, OPS={"METRICS_TOKEN": "s3cret-metrics"})
def test_a_metrics_token_closes_metrics_on_an_open_installation(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/v2/workflows").status_code == 200


@override_settings(GUST={**django_settings.GUST, "API_AUTH": False}, OPS={"METRICS_TOKEN": ""})
def test_an_open_installation_without_a_token_has_open_metrics(client):
    scrape(client)
    assert client.post("/metrics").status_code == 405


def test_multiprocess_counters_add_up_across_processes(tmp_path):
    """Two separate processes count transitions into one PROMETHEUS_MULTIPROC_DIR;
    a scrape reading that directory sees the sum (what a gunicorn worker does)."""
    code = (
        "import django; django.setup()\n"
        "from ops import metrics\n"
        "from core.engine import TraceEvent\n"
        "import sys\n"
        "n = int(sys.argv[1])\n"
        "metrics.on_execution_events(None, events=[TraceEvent('TASK_SUCCEEDED', 'e')] * n)\n"
    )
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUST_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    env.pop("DATABASE_URL", None)  # a scratch SQLite file: the counting needs no database of the test's
    (tmp_path / "metrics").mkdir()
    for n in (2, 5):
        subprocess.run([sys.executable, "-c", code, str(n)], env=env, check=True, timeout=120)
    got = samples(metrics.render(multiproc_dir=str(tmp_path / "metrics")).decode())
    assert got[("gust_transitions_total", (("event", "TASK_SUCCEEDED"), ("scope", "task")))] == 7
    assert ("gust_executions", (("state", "SUCCESS"),)) in got
