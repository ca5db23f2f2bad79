"""The comparison page's benchmark button: a background worker job, one at
a time, permission-checked, with its progress in a row the page shows live.
The command is replaced by a small script that prints what
compare_completion prints (the real one runs in tests/browser)."""

import json
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from tracker import benchmarks, views
from tracker.models import BenchmarkRun

pytestmark = pytest.mark.django_db

SCRIPT = """
import json, sys
out = sys.argv[sys.argv.index("--output") + 1]
for line in ["compare: migrating sqlite database x", "compare: migrated in 1.0 s", "compare: web http://x",
             "compare: warm-up of 10 callback executions done", "compare: mode 1/2 callback (5 executions)",
             "[callback] p50 3 ms", "compare: mode 1/2 callback done in 2.0 s", "compare: mode 2/2 poll-0.5s-x4 (5 executions)",
             "compare: mode 2/2 poll-0.5s-x4 done in 3.0 s", "compare: wrote " + out]:
    print(line, flush=True)
if "--fail" in sys.argv:
    sys.exit(3)
open(out, "w").write(json.dumps({"ok": True, "modes": [{"name": "callback", "tracking": "callback", "n": 5,
    "completed": 5, "latency_ms": {"p50": 3.0, "p95": 4.0, "p99": 5.0}}], "options": {"n": 5}, "database": {}}))
"""


@pytest.fixture
def results(tmp_path, monkeypatch, settings):
    monkeypatch.setitem(settings.TRACKER, "BENCH_RESULTS_DIR", tmp_path)
    monkeypatch.setattr(
        benchmarks, "argv", lambda run: [sys.executable, "-c", SCRIPT, *run.args, "--output", run.output]
    )
    return tmp_path


@pytest.fixture
def runner(client):
    user = User.objects.create_user("rita")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmark"))
    client.force_login(user)
    return client


def test_the_progress_of_each_line_the_command_prints():
    assert benchmarks.progress_of("compare: migrating sqlite database /tmp/x") == (
        0.05,
        "migrating a throwaway database",
    )
    assert benchmarks.progress_of("compare: mode 1/3 callback (5 executions)") == (0.25, "mode 1/3 callback")
    assert benchmarks.progress_of("compare: mode 2/3 poll-0.5s-x4 done in 3.1 s (6 s since the first)") == (
        0.683,
        "mode 2/3 poll-0.5s-x4 done",
    )
    assert benchmarks.progress_of("compare: mode 3/3 hybrid done in 1 s")[0] == 0.9
    assert benchmarks.progress_of("[callback] p50 3 ms") is None


def test_the_button_runs_the_benchmark_as_a_worker_job_and_the_page_draws_the_result(
    runner, results, django_capture_on_commit_callbacks
):
    page = runner.get("/tracker/compare/").content.decode()
    assert "Run the benchmark" in page and "No comparison yet" in page
    with django_capture_on_commit_callbacks(execute=True):  # the worker job runs inline (GUST_SYNC_WORKER)
        r = runner.post("/tracker/compare/run")
    assert r.status_code == 302 and r["Location"] == "/tracker/compare/#benchmark"
    run = BenchmarkRun.objects.get()
    assert (run.state, run.progress, run.step, run.requested_by) == ("SUCCESS", 1.0, "done", "rita")
    assert "compare: wrote" in run.log_tail
    assert json.loads((results / "compare-latest.json").read_text())["modes"][0]["name"] == "callback"
    page = runner.get("/tracker/compare/").content.decode()
    assert "No comparison yet" not in page and "Done: the result is drawn below." in page
    assert "callback p95: 4.0 ms" in page  # the latency chart of the run


def test_a_run_that_fails_shows_its_output(runner, results, settings, django_capture_on_commit_callbacks):
    settings.TRACKER = {**settings.TRACKER, "COMPLETIONS": {"BENCHMARK_ARGS": ["--fail"]}}
    with django_capture_on_commit_callbacks(execute=True):
        runner.post("/tracker/compare/run")
    run = BenchmarkRun.objects.get()
    assert run.state == "ERROR" and run.error == "compare_completion exited with 3"
    assert run.progress == 0.99 and not (results / "compare-latest.json").exists()
    page = runner.get("/tracker/compare/").content.decode()
    assert "compare_completion exited with 3" in page and "compare: mode 2/2" in page


def test_one_run_at_a_time_and_a_job_delivered_twice_runs_once(runner, results):
    r = runner.post("/tracker/compare/run")  # not committed: its job is not run here
    assert r.status_code == 302
    run = BenchmarkRun.objects.get()
    page = runner.get("/tracker/compare/").content.decode()
    assert 'class="bench-progress"' in page and "waiting for a worker" in page
    again = runner.post("/tracker/compare/run", follow=True).content.decode()
    assert f"A benchmark is already running (run {run.id}, started by rita, 0%)" in again
    assert BenchmarkRun.objects.count() == 1
    assert benchmarks.run(run.id) == "SUCCESS"
    assert benchmarks.run(run.id) == "skipped"


def test_a_run_whose_worker_went_away_does_not_block_the_next(runner, results):
    old = BenchmarkRun.objects.create(requested_by="x", state="RUNNING")
    BenchmarkRun.objects.filter(id=old.id).update(updated_at=timezone.now() - timedelta(hours=1))
    assert runner.post("/tracker/compare/run").status_code == 302
    old.refresh_from_db()
    assert old.state == "ERROR" and "stopped answering" in old.error
    assert BenchmarkRun.objects.filter(state="QUEUED").count() == 1


def test_only_users_with_the_permission_may_run_it(client, results):
    client.force_login(User.objects.create_user("nobody"))
    assert "Running it needs the permission" in client.get("/tracker/compare/").content.decode()
    r = client.post("/tracker/compare/run")
    assert r.status_code == 403 and "tracker.run_benchmark" in r.content.decode()
    assert not BenchmarkRun.objects.exists()
    client.logout()
    assert client.post("/tracker/compare/run").status_code == 302  # to the login page
    assert not BenchmarkRun.objects.exists()


def test_the_pages_are_live_regions_with_an_event_stream(runner, results):
    for url, page in (("/tracker/", "overview"), ("/tracker/compare/", "compare")):
        whole = runner.get(url).content.decode()
        assert f'data-live-events="/tracker/events?page={page}"' in whole and "<html" in whole
        region = runner.get(url, headers={"X-Gust-Live": "1"}).content.decode()
        assert "<html" not in region and "Live completion latency" in region
    before = views.fingerprint("compare")
    BenchmarkRun.objects.create(requested_by="x")
    assert views.fingerprint("compare") != before
    stream = runner.get("/tracker/events?page=compare")
    assert stream["Content-Type"] == "text/event-stream"
