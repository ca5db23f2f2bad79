"""A real ``manage.py worker`` process (django-q2 cluster) runs an I/O action.

On SQLite it uses the ORM broker; when the suite runs on PostgreSQL it uses
the Redis broker at REDIS_URL (default 127.0.0.1:6379), so the scale-out
configuration is exercised for real, not mocked.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django_q.conf import Conf

from workflows import queue, services
from workflows.models import WorkflowExecution

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker_process(monkeypatch):
    queue_name = f"gust-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, DATABASE_URL=database_url(), GUST_QUEUE=queue_name, GUST_WORKERS="1")
    env.pop("GUST_SYNC_WORKER", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", queue_name)
    monkeypatch.setattr(Conf, "PREFIX", queue_name)
    if connection.vendor == "sqlite":
        env["GUST_BROKER"] = "orm"
    else:
        env.update(GUST_BROKER="redis", REDIS_URL=REDIS_URL)
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    queue.broker.cache_clear()
    proc = subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    print(out)  # shown by pytest when the test fails
    queue.broker.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_http_actions_from_the_queue(worker_process, outside_service):
    services.save_workflows(f"""
version: '2.0'
fetch:
  output: {{status: <% $.status %>}}
  tasks:
    call:
      action: std.http url={outside_service.url}/job
      publish: {{status: <% task().result.status %>}}
""")
    ex = services.start_execution("fetch")
    deadline = time.monotonic() + 60  # a bound, not an assertion on speed
    while time.monotonic() < deadline and worker_process.poll() is None:
        ex.refresh_from_db()
        if ex.state != "RUNNING":
            break
        time.sleep(0.1)
    assert worker_process.poll() is None, "the worker exited early"
    assert ex.state == "SUCCESS", ex.state_info
    assert ex.output == {"status": 200}
    assert [r["path"] for r in outside_service.requests] == ["/job"]
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"
