"""``manage.py reliability``: the recording endpoint it counts side effects
with, the report's table, and one ``--quick`` run of every scenario end to end
with real processes (a bound on how long it may take, not a speed assertion).

The end-to-end run starts its own throwaway SQLite database and processes, so
it runs once, in the SQLite pass of bin/test (the PostgreSQL + Redis variant is
``manage.py reliability --database postgres``).
"""

import json

import pytest
import requests
from django.core.management import call_command
from django.db import connection

from bench import reliability, report
from bench.outside import OutsideService
from bench.reliability import SCENARIOS


def test_the_recording_service_counts_every_call_per_key():
    svc = OutsideService().start()
    try:
        for method in ("get", "post", "put"):
            assert getattr(requests, method)(f"{svc.url}/record/ex-1", timeout=5).json()["calls"] >= 1
        requests.post(f"{svc.url}/record/ex-2?sleep=0.01", json={"a": 1}, timeout=5)
        assert requests.get(f"{svc.url}/_bench/records", timeout=5).json()["records"] == {"ex-1": 3, "ex-2": 1}
    finally:
        svc.stop()


def test_processes_a_dead_child_left_behind_are_killed_and_only_those(tmp_path):
    import os
    import subprocess
    import sys

    from bench import isolation

    marker = str(tmp_path / "gust.sqlite3")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = subprocess.Popen(sleeper, env={**os.environ, isolation.ENV_EXPECTED_DB: marker}, start_new_session=True)
    other = subprocess.Popen(sleeper, env={**os.environ, isolation.ENV_EXPECTED_DB: marker + "-other"})
    try:
        assert reliability.kill_leftovers(marker) == 1
        assert ours.wait(10) != 0
        assert other.poll() is None
    finally:
        for p in (ours, other):
            if p.poll() is None:
                p.kill()
            p.wait(10)


def test_the_table_shows_what_a_scenario_did_not_measure_as_a_dash():
    text = report.table({"started": 5, "finished": 4, "stuck": 1, "lost": 0, "duplicated": 2})
    header, _, row = text.strip().splitlines()
    assert header.startswith("| executions started | finished | stuck | lost | duplicated | inputs fuzzed")
    assert row == "| 5 | 4 | 1 | 0 | 2 | — | — | — | — |"


def test_the_findings_list_every_number_gust_does_not_promise():
    result = {
        "scenarios": {
            "worker_kill9": {"started": 5, "finished": 5, "stuck": 0, "lost": 0, "duplicated": 2, "five_xx": 0},
            "stop_all": {"started": 5, "finished": 5, "stuck": 0, "lost": 0, "duplicated": 0},
            "fuzz_api": {"inputs": 9, "five_xx": 1, "answered_without_login": ["GET /api/x -> 200"]},
        }
    }
    lines = report.findings(result)
    assert len(lines) == 2
    assert lines[0].startswith("`worker_kill9`") and "2 duplicated" in lines[0] and "lost" not in lines[0]
    assert "1 5xx" in lines[1] and "GET /api/x -> 200" in lines[1]


def test_the_definitions_keep_the_outside_address_out_of_reach_of_input():
    text = reliability.workflow_yaml("http://127.0.0.1:1")
    assert "http://127.0.0.1:1/record/<% execution().id %>" in text
    assert "<% $.url" not in text


@pytest.mark.skipif(connection.vendor != "sqlite", reason="runs its own throwaway database; once is enough")
def test_a_quick_run_writes_the_report_with_numbers_for_every_scenario(tmp_path):
    md, js = tmp_path / "reliability.md", tmp_path / "reliability.json"
    call_command(
        "reliability", "--quick", "--output", str(md), "--json", str(js), stdout=(tmp_path / "out.txt").open("w")
    )
    result = json.loads(js.read_text())
    assert result["failures"] == []
    assert list(result["scenarios"]) == list(SCENARIOS)
    text = md.read_text()
    for name in SCENARIOS:
        assert f"(`{name}`)" in text
        out = result["scenarios"][name]
        assert "error" not in out, out
    for name in ("worker_kill9", "queue_backlog", "web_kill9", "worker_sigterm", "stop_all", "completions"):
        out = result["scenarios"][name]
        assert out["started"] > 0 and out["finished"] + out["stuck"] == out["started"]
        assert {"lost", "duplicated"} <= set(out)
    assert result["scenarios"]["completions"]["completions"] > 0
    assert result["scenarios"]["fuzz_parser"]["inputs"] > 0
    assert result["scenarios"]["fuzz_api"]["inputs"] > 0
    assert result["scenarios"]["fuzz_api"]["operations"]  # both schemas were loaded
    assert any(op.startswith("GET /api/") for op in result["scenarios"]["fuzz_api"]["operations"])
    assert any(op.startswith("POST /v2/executions") for op in result["scenarios"]["fuzz_api"]["operations"])
