"""``manage.py broker_bench`` and ``manage.py retention_bench`` end to end
with real processes on a throwaway database, tiny counts. They check what
each run counted (every job run exactly once, every old execution gone, the
clients' executions kept); never timings."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_broker_bench_counts_every_job_run_once(tmp_path):
    out = tmp_path / "broker.json"
    stdout = io.StringIO()
    call_command("broker_bench", "--runs", "orm:1x2", "--jobs", "30", "--output", str(out), stdout=stdout)
    data = json.loads(out.read_text())
    (run,) = data["results"]
    assert data["ok"] is True and run["ok"] is True
    assert run["runs"] == {"runs": 30, "distinct": 30, "run_more_than_once": 0, "examples": []}
    assert run["action_states"] == {"SUCCESS": 30} and run["execution_states"] == {"SUCCESS": 30}
    assert run["jobs_per_s"] > 0 and run["seed"]["queue_size"] == 30
    assert "| orm |" in out.with_suffix(".md").read_text()


@pytest.mark.parametrize("runs", ["orm", "kafka:1x2", "orm:0x2", "redis:1x99"])
def test_broker_bench_refuses_bad_runs(runs):
    with pytest.raises(CommandError, match="--runs"):
        call_command("broker_bench", "--runs", runs, stdout=io.StringIO())


def test_retention_bench_deletes_the_old_and_keeps_the_clients(tmp_path):
    out = tmp_path / "retention.json"
    call_command(
        "retention_bench",
        "--old",
        "300",
        "--clients",
        "2",
        "--phase-seconds",
        "2",
        "--batch-size",
        "50",
        "--output",
        str(out),
        stdout=io.StringIO(),
    )
    data = json.loads(out.read_text())
    assert data["ok"] is True
    assert data["checked"]["old_remaining"] == 0 and data["checked"]["orphan_actions"] == 0
    assert data["checked"]["client_executions_kept"] > 0
    assert set(data["checked"]["client_states"]) == {"SUCCESS"}
    assert data["phases"]["before"]["n"] > 0 and data["phases"]["after"]["n"] > 0
    assert "deleted 300 execution(s)" in data["deleter"]
