"""``manage.py bench`` end to end with tiny counts. Never asserts on timings.

The command re-runs itself in a child process on a throwaway database (a
temporary SQLite file, or gust_bench_<pid> when DATABASE_URL is PostgreSQL),
so these tests need no pytest database except the one that checks ``verify``.
"""

import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bench import runner
from bench.workflows import SHAPES

ALL = ["noop1", "seq50", "fan100", "conc"]


def run_bench(tmp_path, *extra):
    out = tmp_path / "bench.json"
    call_command(
        "bench",
        "--scenarios",
        ",".join(ALL),
        "--repeat",
        "2",
        "--threads",
        "3",
        "--output",
        str(out),
        *extra,
        stdout=(tmp_path / "stdout.txt").open("w"),
    )
    return json.loads(out.read_text()), (tmp_path / "stdout.txt").read_text()


def check_result(data, mode):
    assert data["ok"] is True, data.get("failures")
    assert data["failures"] == []
    assert data["mode"] == mode
    assert data["database"]["throwaway"] is True
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["django"] and data["machine"]["python"]
    assert data["machine"]["db_vendor"] == data["database"]["vendor"]
    assert data["command"].split(" bench ")[0].endswith("manage.py") or "manage.py bench" in data["command"]
    assert set(data["scenarios"]) == set(ALL)
    for name, s in data["scenarios"].items():
        expected_tasks = SHAPES[name].tasks
        assert s["n"] > 0, name
        for key in ("p50_ms", "p95_ms", "mean_ms", "min_ms", "max_ms", "wall_s", "tasks_per_s"):
            assert s[key] is not None and s[key] >= 0, (name, key)
        v = s["verified"]
        executions = s["n"] + s["warmup"]
        assert v["executions"] == v["success"] == executions, name
        assert v["task_executions"] == v["action_executions"] == executions * expected_tasks, name
    assert data["scenarios"]["fan100"]["tasks_per_execution"] == 101  # 100 parallel + the join
    assert data["scenarios"]["conc"]["n"] == 2 * 3 and data["scenarios"]["conc"]["rounds"] == 2


def test_bench_direct_all_scenarios(tmp_path):
    data, out = run_bench(tmp_path)
    check_result(data, "direct")
    assert "Applying workflows.0001_initial" in out  # migrated its own database
    assert "[fan100] n=2" in out and "bench OK" in out
    # Progress: each migration numbered and timed, then a line as each scenario starts and ends.
    steps = re.findall(r"Applying \S+\.\.\. \[(\d+)/(\d+)\] OK \([\d.]+ s, [\d.]+ s in all\)", out)
    assert steps and [int(i) for i, _ in steps] == list(range(1, len(steps) + 1))
    assert {int(n) for _, n in steps} == {len(steps)}
    assert f"Applied {len(steps)} migrations in" in out
    for i, name in enumerate(ALL, 1):
        assert f"bench: scenario {i}/{len(ALL)} {name} (2 {'rounds' if name == 'conc' else 'executions'})" in out
        assert re.search(rf"bench: scenario {i}/{len(ALL)} {name} done in [\d.]+ s \([\d.]+ s since the first\)", out)


def test_bench_http_all_scenarios(tmp_path):
    data, _ = run_bench(tmp_path, "--http", "--warmup", "0")
    check_result(data, "http")


def test_child_refuses_without_throwaway_database(tmp_path, monkeypatch):
    monkeypatch.delenv("GUST_BENCH_DB", raising=False)
    with pytest.raises(CommandError, match="GUST_BENCH_DB"):
        call_command("bench", "--child", str(tmp_path / "r.json"))
    monkeypatch.setenv("GUST_BENCH_DB", str(tmp_path / "other.sqlite3"))
    with pytest.raises(CommandError, match="refusing to run"):
        call_command("bench", "--child", str(tmp_path / "r.json"))


@pytest.mark.django_db
def test_verify_fails_loudly_on_wrong_row_count():
    runner.load_workflows()
    execution_id, ms = runner.run_direct("bench_noop1")
    assert ms > 0
    assert runner.verify([execution_id], 1)["task_executions"] == 1
    with pytest.raises(runner.BenchFailure, match="expected 2"):
        runner.verify([execution_id], 2)
    with pytest.raises(runner.BenchFailure, match="state None"):
        runner.verify(["no-such-execution"], 1)
