"""The tracker page's live completion latency in a real browser: after a few
async actions complete (by callback, by the tracker's polls, by hand), a fresh
install's tracker and comparison pages show their figures and histograms."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tracker import latency
from tracker import services as tracker_services
from tracker.models import TrackedAction
from tracker.queries import QueryResult
from tracker.runner import Tracker
from workflows import callbacks, services
from workflows.models import ActionExecution

from .conftest import shoot

pytestmark = pytest.mark.django_db(transaction=True)

WF = """version: '2.0'
build:
  input: [mode, url]
  tasks:
    job:
      action: gust.http_job
      input: {url: <% $.url %>, tracking: <% $.mode %>}
      on-success: [deploy]
    deploy:
      action: std.noop
"""


def started(mode, n, url):
    out = []
    for _ in range(n):
        ex = services.start_execution("build", {"mode": mode, "url": url})
        out.append(ActionExecution.objects.get(workflow_execution=ex, task_name="job"))
    return out


@pytest.fixture
def outside():
    from bench.outside import OutsideService

    service = OutsideService(delay=3600, callback=False).start()  # jobs that wait for this test to finish them
    yield f"{service.url}/jobs"
    service.stop()


@pytest.fixture
def completed(transactional_db, outside):
    services.save_workflows(WF)
    rng = random.Random(11)
    for action in started("callback", 12, outside):
        done = timezone.now() - timedelta(milliseconds=rng.uniform(2, 40))
        tracker_services.apply_callback(callbacks.make_token(action.id, action.attempt), "SUCCESS", {"ok": 1},
                                        finished_at=done.isoformat())
    polled = started("poll", 8, outside)
    TrackedAction.objects.update(next_query_at=timezone.now() - timedelta(hours=1), scheduled=True)

    def query(action):
        finished = timezone.now() - timedelta(seconds=rng.uniform(0.1, 4))
        return QueryResult(True, "SUCCESS", {"ok": 2}, finished.timestamp())

    Tracker(queries=lambda name: query, thread_pool_size=1).run_once()
    for action in started("callback", 3, outside):
        services.complete_action(action.id, "SUCCESS", {"ok": 3})
    latency.roll_up(timezone.now() + timedelta(seconds=5))
    return len(polled)


def test_the_tracker_page_shows_live_latency_per_mode_with_histograms(open_as, people, completed, settings, tmp_path,
                                                                     monkeypatch):
    from tracker import views

    monkeypatch.setattr(views, "RESULTS_DIR", tmp_path)  # a fresh install: no benchmark has run
    page = open_as("olga")
    page.goto("/tracker/?window=1h")
    rows = page.locator("table.latency-modes tr.mode-row")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator("td").first).to_have_text("callback")
    expect(rows.nth(1).locator("td").first).to_have_text("poll")
    expect(rows.nth(2).locator("td").first).to_have_text("by hand")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("12")
    expect(rows.nth(1).locator("td").nth(3)).to_have_text("1.0")  # one poll per completion
    histogram = page.locator('svg.latency-histogram[data-series="next"]')
    expect(histogram.locator("rect.bar").first).to_be_visible()
    assert histogram.locator('rect.bar[data-mode="poll"]').count() > 0
    assert page.locator('svg.latency-histogram[data-series="detect"] rect.bar').count() > 0
    expect(page.locator('.window-filter a[aria-current="true"]')).to_have_text("1h")
    shoot(page, "tracker-latency", docs=True)

    page.goto("/tracker/compare/")
    expect(page.locator("table.latency-modes tr.mode-row")).to_have_count(3)
    expect(page.get_by_text("No comparison yet")).to_be_visible()
