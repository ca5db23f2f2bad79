"""``manage.py compare_completion``: the simulated outside service, the batch
query function, the SQL counter, the modes and targets, the dashboard pages,
and one ``--quick`` run end to end with real processes. No timing assertions.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from bench import compare, querycount
from bench.compare import Mode
from bench.outside import OutsideService
from bench.queries import batch_status
from tracker.queries import QueryError

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout=10.0):
    """A bound, not an assertion on speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def service():
    svc = OutsideService(delay=0.1, callback=False).start()
    yield svc
    svc.stop()


def start_job(svc, action_id="act-1", callback_url=None, **body):
    headers = {"Mistral-Action-Execution-Id": action_id}
    if callback_url:
        headers["Gust-Callback-URL"] = callback_url
    resp = requests.post(f"{svc.url}/jobs", json=body, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


# --- the simulated outside service ---------------------------------------------


def test_a_job_runs_then_succeeds_and_its_status_url_says_so(service):
    answer = start_job(service, "act-1", delay=0.2)
    assert set(answer) >= {"job_id", "status_url"}
    assert answer["status_url"] == f"{service.url}/jobs/{answer['job_id']}"
    first = requests.get(answer["status_url"], timeout=5).json()
    assert first == {"job_id": answer["job_id"], "state": "RUNNING", "output": None, "finished_at": None}

    done = wait_for(lambda: (s := requests.get(answer["status_url"], timeout=5).json())["state"] == "SUCCESS" and s)
    assert done["output"]["job_id"] == answer["job_id"]
    [record] = service.records()
    assert done["finished_at"] == record["t_done"]  # the outside completion time, for Gust's live latency
    assert record["action_id"] == "act-1" and record["t_done"] >= record["created"] + 0.2
    assert record["seen_done_at"] >= record["t_done"]  # the first SUCCESS answer is remembered
    # The action execution id finds the same job; an unknown id is a 404.
    assert requests.get(f"{service.url}/jobs/act-1", timeout=5).json()["state"] == "SUCCESS"
    assert requests.get(f"{service.url}/jobs/nope", timeout=5).status_code == 404


def test_the_same_action_sent_twice_is_the_same_job(service):
    assert start_job(service, "act-1")["job_id"] == start_job(service, "act-1")["job_id"]


def test_a_never_job_stays_running(service):
    answer = start_job(service, "act-1", delay=0, never=True)
    time.sleep(0.1)
    assert requests.get(answer["status_url"], timeout=5).json()["state"] == "RUNNING"
    assert service.records()[0]["due"] is None


def test_the_result_is_put_to_the_gust_callback_url(outside_service):
    """``outside_service`` (tests/conftest.py) stands in for Gust and records the PUT."""
    svc = OutsideService(delay=0.05, callback=True).start()
    try:
        url = f"{outside_service.url}/api/callbacks/signed-token"
        answer = start_job(svc, "act-7", callback_url=url, tag="cb")
        put = wait_for(lambda: next((r for r in outside_service.requests if r["method"] == "PUT"), None))
        assert put["path"] == "/api/callbacks/signed-token"
        assert put["headers"]["Content-Type"] == "application/json"
        body = json.loads(put["body"])
        assert body == {
            "state": "SUCCESS",
            "output": {"job_id": answer["job_id"], "done_at": body["output"]["done_at"]},
            "finished_at": body["output"]["done_at"],
        }
        record = wait_for(lambda: (r := svc.records("cb")[0])["callback_status"] and r)
        assert record["callback_status"] == 200 and record["callback_attempts"] == 1
        assert record["headers"]["Gust-Callback-URL"] == url
        assert record["callback_sent_at"] >= record["t_done"]
        assert svc.summary()["callbacks_sent"] == 1 and svc.summary()["by_tag"] == {"cb": 1}
    finally:
        svc.stop()


def test_dropped_callbacks_are_never_sent_so_only_polling_finds_them(outside_service):
    svc = OutsideService(delay=0.05, callback=True, drop_fraction=1.0).start()
    try:
        answer = start_job(svc, "act-8", callback_url=f"{outside_service.url}/api/callbacks/t")
        wait_for(lambda: requests.get(answer["status_url"], timeout=5).json()["state"] == "SUCCESS")
        time.sleep(0.2)
        assert [r for r in outside_service.requests if r["method"] == "PUT"] == []
        assert svc.records()[0]["dropped"] is True
        assert svc.summary()["callbacks_dropped"] == 1
    finally:
        svc.stop()


def test_the_batch_endpoint_answers_many_jobs_at_once(service):
    done = start_job(service, "act-done", delay=0)
    start_job(service, "act-running", never=True)
    wait_for(lambda: service.find("act-done").state == "SUCCESS")
    resp = requests.post(f"{service.url}/jobs/status", json={"ids": [done["job_id"], "act-running", "nope"]}, timeout=5)
    body = resp.json()
    assert body["jobs"][done["job_id"]]["state"] == "SUCCESS"
    assert body["jobs"]["act-running"] == {"state": "RUNNING", "output": None, "finished_at": None}
    assert body["unknown"] == ["nope"]
    assert requests.post(f"{service.url}/jobs/status", json={"ids": "x"}, timeout=5).status_code == 400
    assert service.summary()["batch_queries"] == 1


# --- the batch query function ----------------------------------------------------


def test_the_batch_query_function_answers_a_claimed_batch_in_one_request(service):
    start_job(service, "a-done", delay=0)
    start_job(service, "a-running", never=True)
    wait_for(lambda: service.find("a-done").state == "SUCCESS")
    actions = [
        SimpleNamespace(id=i, input={"url": f"{service.url}/jobs"}) for i in ("a-done", "a-running", "a-unknown")
    ]
    answers = batch_status(actions)
    assert batch_status.many is True
    assert answers["a-done"].done and answers["a-done"].state == "SUCCESS"
    assert answers["a-done"].output["job_id"] == service.find("a-done").job_id
    assert "a-running" not in answers and "a-unknown" not in answers  # the tracker counts them as running
    assert service.summary()["batch_queries"] == 1


def test_the_batch_query_function_reports_an_unreachable_service_per_action():
    actions = [SimpleNamespace(id="x", input={"url": "http://127.0.0.1:9/jobs"})]
    assert isinstance(batch_status(actions)["x"], QueryError)


def test_the_batch_function_is_registered_through_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "from tracker.queries import query_for; import json; "
        "print(json.dumps([settings.TRACKER['QUERIES'], query_for('gust.http_job').__module__]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GUST_TRACKER_QUERIES": "gust.http_job=bench.queries.batch_status",
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    queries, module = json.loads(out.stdout.strip().splitlines()[-1])
    assert queries == {"gust.http_job": "bench.queries.batch_status"} and module == "bench.queries"


# --- the SQL counter ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_query_counter_counts_statements_and_commits_into_its_file(tmp_path, monkeypatch):
    from django.db import connection

    from workflows.models import WorkflowDefinition

    monkeypatch.setattr(querycount, "_dir", tmp_path)
    monkeypatch.setattr(querycount, "_role", "web")
    querycount._reset()
    querycount._on_connection_created(None, connection)
    querycount._on_connection_created(None, connection)  # a reconnect must not count twice
    try:
        WorkflowDefinition.objects.count()
        with connection.cursor() as c:
            c.execute("UPDATE workflows_workflowdefinition SET name = name WHERE 1 = 0")
        querycount.flush(force=True)
    finally:
        connection.execute_wrappers.remove(querycount._wrapper)
    totals = querycount.read_totals(tmp_path)
    assert totals["web"]["select"] == 1 and totals["web"]["update"] == 1 and totals["web"]["statements"] == 2


def test_query_counts_are_written_when_the_benchmark_asks(tmp_path, monkeypatch):
    """Not five times a second: on request (and every IDLE_FLUSH_S), so that
    counting does not cost the process it measures."""
    from bench import querycount

    monkeypatch.setattr(querycount, "_dir", tmp_path)
    monkeypatch.setattr(querycount, "_role", "tracker")
    monkeypatch.setattr(querycount, "IDLE_FLUSH_S", 3600.0)
    querycount._reset()
    querycount.flush(force=True)  # as install() does at start
    stop = threading.Event()
    writer = threading.Thread(target=querycount._writer, args=(stop,), daemon=True)
    writer.start()
    try:
        querycount.request_flush(tmp_path)
        assert querycount.read_totals(tmp_path)["tracker"]["select"] == 0
        querycount._bump("select")
        time.sleep(0.2)
        assert querycount.read_totals(tmp_path)["tracker"]["select"] == 0  # changed, but nobody asked
        querycount.request_flush(tmp_path)
        assert querycount.read_totals(tmp_path)["tracker"]["select"] == 1
    finally:
        stop.set()
        writer.join(timeout=2)


# --- modes, targets, summary (pure) -------------------------------------------------


def test_modes_parse_from_the_command_line():
    assert Mode.parse("callback") == Mode("callback")
    assert Mode.parse("poll-0.1-10") == Mode.parse("poll-0.1s-x10") == Mode("poll", 0.1, 10)
    assert Mode.parse("hybrid") == Mode("hybrid", 1.0, 10)
    assert Mode("poll", 5.0, 1).name == "poll-5s-x1"
    with pytest.raises(ValueError, match="bad mode"):
        Mode.parse("poll-fast")
    assert [m.name for m in compare.DEFAULT_MODES] == [
        "callback",
        "poll-0.1s-x1",
        "poll-0.1s-x10",
        "poll-1s-x1",
        "poll-1s-x10",
        "poll-5s-x1",
        "poll-5s-x10",
        "hybrid-1s-x10",
    ]


def sample_result() -> dict:
    def mode(name, tracking, interval, pool, p50, p95, p99):
        return {
            "name": name,
            "tracking": tracking,
            "query_interval": interval,
            "thread_pool_size": pool,
            "query_function": None if tracking == "callback" else "tracker.queries.http_status",
            "n": 200,
            "completed": 200,
            "latency_ms": {"n": 200, "p50": p50, "p95": p95, "p99": p99},
            "cpu_s": {"web": 1.5, "worker": 2.5, "tracker": 0.0 if tracking == "callback" else 2.0, "total": 6.0},
            "queries": {
                "per_completion": 44.0,
                "commits_per_completion": 7.0,
                "by_role": {"web": {"per_completion": 20.0}, "worker": {"per_completion": 24.0}},
            },
            "outside": {"status_queries_per_completion": 0 if tracking == "callback" else 3.0, "callbacks_dropped": 40},
            "dropped_fraction": 0.2,
            "latency_by_route_ms": {"poll": {"p95": 900.0}, "callback": {"p95": 20.0}},
        }

    result = {
        "ok": True,
        "timestamp": "2026-11-23T12:00:00+00:00",
        "command": "python manage.py compare_completion",
        "broker": "orm",
        "database": {"vendor": "sqlite", "version": "3.46"},
        "options": {"n": 200, "rate": 20.0, "delay": 2.0},
        "machine": {"cpu_count": 2},
        "modes": [
            mode("callback", "callback", None, None, 6.4, 24.5, 50.5),
            mode("poll-1s-x10", "poll", 1.0, 10, 565.2, 1061.1, 1228.5),
            mode("hybrid-1s-x10", "hybrid", 1.0, 10, 7.0, 800.0, 950.0),
        ],
        "extras": {
            "idle": {
                "tracked": 1000,
                "query_interval": 1.0,
                "seconds": 30.0,
                "tracker_core": 0.05,
                "tracker_core_per_1000": 0.05,
                "polls_per_s": 1000.0,
                "polls_needed_per_s": 1000.0,
                "tracker_statements_per_s": 12.0,
                "lag_after_s": 0.2,
            },
            "few": {
                "outstanding": 200,
                "sample": 200,
                "query_interval": 1.0,
                "tracker_core": 0.04,
                "max_lag_s": 0.1,
                "latency_ms": {"p50": 500.0, "p95": 960.0, "p99": 1000.0},
            },
            "many": {
                "outstanding": 10200,
                "sample": 200,
                "query_interval": 1.0,
                "tracker_core": 0.9,
                "max_lag_s": 4.0,
                "latency_ms": {"p50": 2500.0, "p95": 5000.0, "p99": 5200.0},
            },
        },
    }
    result["targets"] = compare.evaluate(result)
    return result


def test_the_targets_are_judged_from_the_result():
    targets = {t["target"]: t for t in sample_result()["targets"]}
    assert targets["callback: p50 <= 15 ms (HTTP callback)"]["met"] is True
    assert targets["poll-1s-x10: p95 <= QUERY_INTERVAL + 10%"]["limit"] == 1100.0
    assert targets["poll-1s-x10: p95 <= QUERY_INTERVAL + 10%"]["met"] is True
    idle = next(t for t in targets.values() if t["target"].startswith("idle tracker"))
    assert idle["value"] == 5.0 and idle["met"] is False
    many = next(t for t in targets.values() if "outstanding" in t["target"])
    assert many["limit"] == 1060.0 and many["met"] is False
    text = compare.summary(sample_result())
    assert "poll-1s-x10" in text and "[MISS]" in text and "[MET ]" in text


# --- dashboard pages ------------------------------------------------------------------


@pytest.fixture
def results_dir(tmp_path, monkeypatch, settings):

    monkeypatch.setitem(settings.TRACKER, "BENCH_RESULTS_DIR", tmp_path)
    return tmp_path


@pytest.mark.django_db
def test_the_compare_page_draws_the_latest_json(client, results_dir):
    (results_dir / "compare-latest.json").write_text(json.dumps(sample_result()))
    (results_dir / "compare-20261123T120000Z.json").write_text(json.dumps(sample_result()))
    resp = client.get("/tracker/compare/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.count("<svg") == 3  # latency, CPU, SQL per completion
    for text in (
        "callback",
        "poll-1s-x10",
        "hybrid-1s-x10",
        "callback p50: 6.4 ms",
        "poll-1s-x10 p99: 1228.5 ms",
        "target 1.1 s",
        "poll-1s-x10 tracker: 2",
        "10200",
        "missed",
        "compare-20261123T120000Z.json",
    ):
        assert text in html, text
    assert client.get("/tracker/compare/?run=compare-20261123T120000Z.json").status_code == 200


@pytest.mark.django_db
def test_the_compare_page_without_a_run_says_how_to_make_one(client, results_dir):
    resp = client.get("/tracker/compare/")
    assert resp.status_code == 200 and "manage.py compare_completion" in resp.content.decode()
    assert client.get("/tracker/compare/?run=../../config/settings.py").status_code == 404
    assert client.get("/tracker/compare/?run=compare-20200101T000000Z.json").status_code == 404


@pytest.mark.django_db
def test_the_tracker_page_shows_the_live_figures(client):
    resp = client.get("/tracker/")
    assert resp.status_code == 200
    html = resp.content.decode()
    for text in ("Tracked", "Due now", "Lag behind schedule", "Erroring", "Queries per second", "No tracker process"):
        assert text in html, text


# --- the command -------------------------------------------------------------------------


def test_the_child_refuses_a_database_that_is_not_the_throwaway(tmp_path, monkeypatch):
    monkeypatch.delenv("GUST_BENCH_DB", raising=False)
    with pytest.raises(CommandError, match="GUST_BENCH_DB"):
        call_command("compare_completion", "--child", str(tmp_path / "r.json"), "--options-json", "{}")


def test_a_quick_run_measures_every_mode_with_real_processes(tmp_path):
    """About 40 s: web (gunicorn), worker, tracker and the outside service for real."""
    out = tmp_path / "compare.json"
    stdout = tmp_path / "stdout.txt"
    call_command("compare_completion", "--quick", "--output", str(out), stdout=stdout.open("w"))
    data = json.loads(out.read_text())
    assert data["ok"] is True, data["failures"]
    assert data["broker"] == "orm" and data["database"]["throwaway"] is True
    assert [m["name"] for m in data["modes"]] == ["callback", "poll-0.1s-x10", "hybrid-0.2s-x10"]
    for m in data["modes"]:
        assert m["completed"] == m["n"] == 20, m["name"]
        assert m["latency_ms"]["n"] == 20 and m["latency_ms"]["p50"] is not None
        assert m["cpu_s"]["total"] > 0 and m["cpu_s"]["web"] > 0 and m["cpu_s"]["worker"] > 0
        assert m["queries"]["per_completion"] > 0 and m["queries"]["by_role"]["web"]["statements"] > 0
    callback, poll, hybrid = data["modes"]
    assert callback["cpu_s"]["tracker"] == 0 and callback["outside"]["callbacks_sent"] == 20
    assert poll["cpu_s"]["tracker"] > 0 and poll["outside"]["status_queries"] >= 20
    assert poll["queries"]["by_role"]["tracker"]["statements"] > 0
    assert hybrid["outside"]["callbacks_sent"] + hybrid["outside"]["callbacks_dropped"] == 20
    assert "latency_by_route_ms" in hybrid and "dropped_fraction" in hybrid
    extras = data["extras"]
    assert extras["idle"]["tracked"] == 100 and extras["idle"]["polls_per_s"] > 0
    assert extras["few"]["completed"] == extras["many"]["completed"] == 10
    assert extras["many"]["outstanding"] == 310
    assert {t["met"] for t in data["targets"]} <= {True, False} and len(data["targets"]) >= 4
    text = stdout.read_text()
    assert "compare_completion (" in text
    # Progress: the throwaway database's migrations numbered, then one line per mode and for the extras.
    assert re.search(r"Applying \S+\.\.\. \[1/\d+\] OK \(", text) and re.search(r"Applied \d+ migrations in", text)
    for i, name in enumerate(["callback", "poll-0.1s-x10", "hybrid-0.2s-x10"], 1):
        assert f"compare: mode {i}/3 {name} (20 executions)" in text
        assert re.search(rf"compare: mode {i}/3 {re.escape(name)} done in [\d.]+ s \([\d.]+ s since the first\)", text)
    assert re.search(r"compare: extras done in [\d.]+ s", text)


def test_early_polls_count_jobs_asked_twice_within_half_an_interval():
    from bench import scale

    jobs = [{"min_query_gap": 0.98}, {"min_query_gap": 0.2}, {"min_query_gap": None}, {}]
    assert scale.early_polls(jobs, 1.0) == {
        "jobs_polled_more_than_once": 2,
        "limit_s": 0.5,
        "polled_twice_in_one_interval": 1,
        "within_a_tenth_of_an_interval": 0,
        "min_gap_s": 0.2,
    }


def test_the_outside_service_records_the_shortest_gap_between_status_queries():
    from bench.outside import Job

    job = Job("j", "a", None, None, created=0.0, due=None, callback=False, dropped=False)
    for t in (10.0, 11.0, 11.3, 12.5):
        job.queried(t)
    assert job.status_queries == 4 and job.min_query_gap == pytest.approx(0.3)
    assert job.status()["finished_at"] is None


def test_a_quick_scale_run_measures_every_part(tmp_path):
    """About 90 s: the floor, per-item polling with one and two trackers, batch polling, 0.1 s."""
    out = tmp_path / "scale.json"
    call_command("compare_completion", "--scale", "--quick", "--output", str(out), stdout=(tmp_path / "o").open("w"))
    data = json.loads(out.read_text())
    assert data["ok"] is True, data["failures"]
    s = data["scale"]
    assert s["floor"]["http_client_cpu_ms"] > 0 and s["floor"]["tracker_http_cpu_ms"] > 0
    assert [(p["outstanding"], p["trackers"]) for p in s["per_item"]] == [(40, 1), (80, 2)]
    for p in s["per_item"]:
        assert p["polls"] > 0 and p["tracker_cpu_ms_per_poll"] > 0
        assert p["sample"]["latency_ms"]["n"] == 10
        assert p["early"]["jobs_polled_more_than_once"] > 0
    assert s["batch_idle"]["tracked"] == 100 and s["batch_idle"]["polls_per_s"] > 0
    assert [b["outstanding"] for b in s["batch"]] == [10, 300]
    assert all(f["latency_ms"]["n"] == 10 for f in s["fast"])
    assert len(s["targets"]) == 11 and {t["met"] for t in s["targets"]} <= {True, False}
    report = out.with_suffix(".md").read_text()
    assert "| target | value | limit | met | note |" in report and "Floor (CPU per GET" in report
