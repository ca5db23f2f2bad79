"""``manage.py rest_bench --quick`` end to end with real processes (gunicorn,
worker, tracker) on a throwaway SQLite database. Never asserts on timings."""

import io
import json

from django.core.management import call_command

from bench import rest


def test_rest_bench_quick_runs_every_scenario_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "rest.json"
    stdout = io.StringIO()
    call_command("rest_bench", "--quick", "--scenarios", ",".join(rest.SCENARIOS), "--output", str(out), stdout=stdout)
    data = json.loads(out.read_text())
    assert data["ok"] is True and data["database"]["throwaway"] is True
    assert set(data["scenarios"]) == set(rest.SCENARIOS)
    for name, (key, _limit) in rest.TARGETS.items():
        assert data["targets"][name]["value"] == data["scenarios"][name][key] > 0, name
    assert data["scenarios"]["conc"]["wall_ms_each"]
    assert data["scenarios"]["items_async"]["most_running_seen"] <= rest.ITEMS_CONCURRENCY
    assert data["scenarios"]["tree"]["sub_workflows"] == 110
    table = out.with_suffix(".md").read_text()
    assert "| seq50 p50 |" in table and table in stdout.getvalue()
