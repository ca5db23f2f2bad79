"""``manage.py scaleout_bench`` and ``manage.py multihost_bench`` end to end
with real processes, tiny counts: what each run counted (every execution
SUCCESS, every action run once, or again only where its task is safe-rerun,
after a host was stopped); never timings. Both need PostgreSQL and Redis
(the suite's PostgreSQL pass: REDIS_URL), the multi-host one also root and
``ip netns``; elsewhere they are skipped."""

import io
import json
import os

import pytest
import redis
from django.core.management import CommandError, call_command
from django.db import connection

from bench import netns

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _postgres_and_redis():
    if connection.vendor != "postgresql":
        pytest.skip("the scale-out runs use PostgreSQL (the suite's PostgreSQL pass)")
    try:
        redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")


@pytest.fixture
def server_url(monkeypatch):
    """The throwaway databases go on the test database's server."""
    s = connection.settings_dict
    monkeypatch.setenv(
        "DATABASE_URL",
        f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
    )
    monkeypatch.setenv("REDIS_URL", REDIS_URL)


def test_scaleout_bench_checks_every_execution_and_action(tmp_path, server_url):
    _postgres_and_redis()
    out = tmp_path / "scaleout.json"
    call_command(
        "scaleout_bench",
        "--workers",
        "1,2",
        "--web",
        "1",
        "--clients",
        "2",
        "--seconds",
        "2",
        "--output",
        str(out),
        stdout=io.StringIO(),
    )
    doc = json.loads(out.read_text())
    assert doc["ok"] is True and [r["worker_processes"] for r in doc["results"]] == [1, 2]
    for r in doc["results"]:
        ck = r["check"]
        assert ck["executions"] >= 2 and ck["execution_states"] == {"SUCCESS": ck["executions"]}
        assert ck["action_rows"] == 10 * ck["executions"] == ck["distinct_actions_run"] == ck["actions_run"]
        assert ck["run_more_than_once"] == 0 and ck["lost"] == 0
    assert "| 1 | 2 (× 2) |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("args", [["--workers", "0"], ["--web", "x"], ["--clients", "0"]])
def test_scaleout_bench_refuses_bad_options(args):
    with pytest.raises(CommandError):
        call_command("scaleout_bench", *args, stdout=io.StringIO())


def test_multihost_bench_survives_a_worker_host_stopped_mid_run(tmp_path, server_url):
    _postgres_and_redis()
    why = netns.available()
    if why:
        pytest.skip(f"network namespaces: {why}")
    out = tmp_path / "multihost.json"
    said = io.StringIO()
    try:
        call_command(
            "multihost_bench",
            "--clients",
            "2",
            "--seconds",
            "6",
            "--kill-at",
            "2",
            "--output",
            str(out),
            stdout=said,
            stderr=said,
        )
    finally:
        print(said.getvalue())  # what the run said, shown by pytest when the test fails
        if out.exists():
            print(out.read_text())
    doc = json.loads(out.read_text())
    (r,) = doc["results"]
    ck = r["check"]
    assert doc["ok"] is True and r["killed"]["host"] == "gso-worker0" and r["killed"]["processes_killed"] >= 1
    assert ck["execution_states"] == {"SUCCESS": ck["executions"]} and ck["lost"] == 0
    assert ck["action_states"] == {"SUCCESS": ck["action_rows"]}
    assert ck["run_more_than_once"] == ck.get("rerun_safely", 0)  # only safe-rerun tasks, after the stop
    assert not [n for n in os.popen("ip netns list").read().split() if n.startswith(netns.PREFIX)]
