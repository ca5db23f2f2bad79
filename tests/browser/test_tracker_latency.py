"""Issue 11's "done when" in a real browser: on a fresh install, after a few
async actions complete in different ways (callbacks through the signed URL,
the tracker's polls, a hybrid action's callback, one by hand on the operator
page, an approval answered in its form), the tracker and comparison pages
show the live figures and a recommendation, refresh by themselves when one
more completes, and the comparison page's button runs the real benchmark
(``compare_completion`` at a tiny size) with a progress bar and draws the
result."""

import os
import random
import shutil
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from approvals.models import Approval
from tests.approvals.conftest import approval_workflow
from tracker import benchmarks, latency
from tracker import services as tracker_services
from tracker.models import TrackedAction
from tracker.queries import QueryResult
from tracker.runner import Tracker
from workflows import callbacks, live, services
from workflows.models import ActionExecution

from .conftest import ARTIFACTS, DOCS, shoot

pytestmark = pytest.mark.django_db(transaction=True)

WF = """version: '2.0'
build:
  input: [mode, url]
  tasks:
    job:
      action: gust.http_job
      input: {url: <% $.url %>, tracking: <% $.mode %>, query_interval: 2}
      on-success: [deploy]
    deploy:
      action: std.noop
waiting:
  tasks:
    job:
      action: std.async_noop
      on-success: [deploy]
    deploy:
      action: std.noop
"""
# Two modes, two executions each: the smallest run that still compares something.
TINY = ["--n", "2", "--delay", "0.1", "--rate", "20", "--modes", "callback", "poll-0.2-x2", "--no-extras"]


def shoot_part(page, name, first, last):
    """A screenshot from the top of ``first`` to the bottom of ``last`` (the
    README's copy stays small), copied to docs/screenshots/ with
    GUST_UPDATE_SCREENSHOTS=1."""
    top, bottom = page.locator(first).first.bounding_box(), page.locator(last).first.bounding_box()
    scroll = page.evaluate("window.scrollY")
    y = top["y"] + scroll - 8
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={
            "x": 0,
            "y": y,
            "width": page.viewport_size["width"],
            "height": bottom["y"] + scroll + bottom["height"] + 8 - y,
        },
    )
    if os.environ.get("GUST_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)


def started(mode, n, url):
    out = []
    for _ in range(n):
        ex = services.start_execution("build", {"mode": mode, "url": url})
        out.append(ActionExecution.objects.get(workflow_execution=ex, task_name="job"))
    return out


def call_back(action, rng):
    done = timezone.now() - timedelta(milliseconds=rng.uniform(2, 40))
    tracker_services.apply_callback(
        callbacks.make_token(action.id, action.attempt), "SUCCESS", {"ok": 1}, finished_at=done.isoformat()
    )


@pytest.fixture
def outside():
    from bench.outside import OutsideService

    service = OutsideService(delay=3600, callback=False).start()  # jobs that wait for this test to finish them
    yield f"{service.url}/jobs"
    service.stop()


@pytest.fixture
def fresh_install(tmp_path, monkeypatch, settings):

    monkeypatch.setitem(settings.TRACKER, "BENCH_RESULTS_DIR", tmp_path)  # no benchmark has run
    settings.TRACKER = {**settings.TRACKER, "COMPLETIONS": {"BENCHMARK_ARGS": TINY}}

    def worker(run_id):  # a thread stands in for the worker process (tests run jobs inline)
        def job():
            try:
                benchmarks.run(run_id)
            finally:
                connection.close()

        threading.Thread(target=job, daemon=True).start()

    monkeypatch.setattr(benchmarks, "enqueue", worker)
    return tmp_path


@pytest.fixture
def completed(transactional_db, outside, people):
    services.save_workflows(WF)
    rng = random.Random(11)
    for action in started("callback", 12, outside):
        call_back(action, rng)
    polled = started("poll", 8, outside)
    TrackedAction.objects.update(next_query_at=timezone.now() - timedelta(hours=1), scheduled=True)

    def query(action):
        finished = timezone.now() - timedelta(seconds=rng.uniform(0.1, 1.9))
        return QueryResult(True, "SUCCESS", {"ok": 2}, finished.timestamp())

    Tracker(queries=lambda name: query, thread_pool_size=1).run_once()
    for action in started("hybrid", 3, outside):
        call_back(action, rng)
    latency.roll_up(timezone.now() + timedelta(seconds=5))
    by_hand = ActionExecution.objects.get(workflow_execution=services.start_execution("waiting", {}))
    services.save_workflows(approval_workflow("expense", assignees=["olga"], quorum=1))
    approval = Approval.objects.get(execution_id=services.start_execution("expense", {}).id)
    people["olga"].user_permissions.add(Permission.objects.get(codename="run_benchmark"))
    return {
        "polled": len(polled),
        "by_hand": by_hand,
        "approval": approval,
        "rng": rng,
        "later": started("callback", 1, outside)[0],
    }


def test_live_latency_recommendation_and_the_benchmark_button_on_a_fresh_install(open_as, fresh_install, completed):
    olga = open_as("olga")
    olga.goto(f"/ops/actions/{completed['by_hand'].id}/complete")  # by hand, on the operator page
    olga.fill("#id_output", '{"done": "by hand"}')
    olga.click("button:has-text('Complete')")
    olga.goto(f"/approvals/{completed['approval'].id}/")  # an approval, answered in its form
    olga.fill("#id_data__amount", "40")
    olga.click("button[value=approve]")
    expect(olga.locator(".messages")).to_contain_text("approved")

    olga.goto("/tracker/?window=1h")
    rows = olga.locator("table.latency-modes tr.mode-row")
    expect(rows).to_have_count(5)
    expect(rows.locator("td:first-child")).to_have_text(["callback", "hybrid-callback", "poll", "by hand", "approval"])
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("12")
    expect(rows.nth(2).locator("td").nth(3)).to_have_text("1.0")  # one poll per completion
    advice = olga.locator('.advice li[data-action="gust.http_job"]')
    expect(advice).to_have_class("advice-use-hybrid")
    expect(advice).to_contain_text("polling every 2 s costs p95")
    expect(advice).to_contain_text("its service sends callbacks: hybrid would give p95")
    expect(olga.locator('.advice li[data-action="std.async_noop"]')).to_contain_text("a recommendation needs 20")
    histogram = olga.locator('svg.latency-histogram[data-series="next"]')
    expect(histogram.locator("rect.bar").first).to_be_visible()
    assert histogram.locator('rect.bar[data-mode="poll"]').count() > 0
    expect(olga.locator("svg.live-percentiles").first.locator("rect").first).to_be_visible()
    expect(olga.locator('.window-filter a[aria-current="true"]')).to_have_text("1h")

    call_back(completed["later"], completed["rng"])  # one more: the page shows it without a reload
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("13")
    assert olga.evaluate("performance.getEntriesByType('navigation').length") == 1
    expect(histogram.locator("rect.bar").first).to_be_visible()  # drawn again after the swap
    shoot(olga, "tracker")
    shoot_part(olga, "tracker-latency", "#live-latency", "#live-latency")

    olga.goto("/tracker/compare/?window=1h")
    expect(olga.locator("table.latency-modes tr.mode-row")).to_have_count(5)
    expect(olga.locator('.advice li[data-action="gust.http_job"]')).to_contain_text("hybrid would give")
    expect(olga.get_by_text("No comparison yet")).to_be_visible()
    olga.click("button:has-text('Run the benchmark')")
    expect(olga.locator(".messages")).to_contain_text("queued")
    expect(olga.locator("progress.bench-progress")).to_be_visible()
    expect(olga.locator(".bench-step")).to_contain_text("mode 1/2", timeout=180_000)  # live, no reload
    shoot(olga, "compare-progress")
    expect(olga.locator('.bench-run[data-state="SUCCESS"]')).to_be_visible(timeout=240_000)
    expect(olga.get_by_text("No comparison yet")).to_have_count(0)
    expect(olga.locator("svg.compare-chart").first).to_be_visible()
    expect(olga.locator("td.nowrap strong")).to_have_text(["callback", "poll-0.2s-x2"])
    assert (fresh_install / "compare-latest.json").exists()
    shoot(olga, "compare")
    shoot_part(olga, "compare", "#benchmark", "div.card:has(div.graph-wrap)")
    olga.goto("about:blank")  # its event stream ends before the test database goes away
    give_up = time.monotonic() + 10
    while live.open_streams() and time.monotonic() < give_up:
        time.sleep(0.1)
