"""Live completion latency: how each async action's result came back, rolled
up per minute, and the figures the tracker page draws."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tracker import latency
from tracker.models import Completion, CompletionBucket, TrackedAction
from tracker.queries import QueryResult
from tracker.runner import Tracker
from workflows import callbacks, services
from workflows.models import ActionExecution, TaskExecution

pytestmark = pytest.mark.django_db

WF = """
version: '2.0'
lat:
  input: [mode]
  tasks:
    job:
      action: std.mistral_http
      input:
        url: http://127.0.0.1:9/never-called
        tracking: <% $.mode %>
        status_url: http://127.0.0.1:9/status
      on-success: [after]
    after:
      action: std.noop
"""


def start(mode="callback"):
    services.save_workflows(WF, update=True)
    ex = services.start_execution("lat", {"mode": mode})
    return ex, ActionExecution.objects.get(workflow_execution=ex, task_name="job")


def callback(client, action, **body):
    path = "/api/callbacks/" + callbacks.make_token(action.id, action.attempt)
    return client.put(path, {"state": "SUCCESS", "output": {"ok": 1}, **body}, content_type="application/json")


def later(seconds=5):
    return timezone.now() + timedelta(seconds=seconds)


def test_a_callback_records_its_mode_and_the_outside_completion_time(client):
    ex, action = start()
    done = timezone.now() - timedelta(milliseconds=250)
    assert callback(client, action, finished_at=done.isoformat()).status_code == 200
    c = Completion.objects.get(action_id=action.id)
    assert c.mode == "callback" and c.action_name == "std.mistral_http" and c.execution_id == ex.id
    assert c.outside_done_at == done and c.detected_at >= done and c.recorded_at >= c.detected_at
    assert latency.roll_up(later()) == 1
    bucket = CompletionBucket.objects.get(span=1)
    assert (bucket.mode, bucket.action_name, bucket.count) == ("callback", "std.mistral_http", 1)
    hour = CompletionBucket.objects.get(span=60)
    assert hour.minute == bucket.minute.replace(minute=0) and hour.count == 1 and hour.next_hist == bucket.next_hist
    assert sum(bucket.detect_hist.values()) == 1 and sum(bucket.next_hist.values()) == 1
    after = TaskExecution.objects.get(workflow_execution=ex, name="after")
    next_ms = (after.started_at - c.detected_at).total_seconds() * 1000
    lo, hi = latency.bin_edges(int(next(iter(bucket.next_hist))))
    assert lo <= max(next_ms, latency.MIN_MS) < hi  # the next task's own started_at, read at roll-up
    assert latency.roll_up(later()) == 0  # folded once


def test_each_way_back_has_its_mode(client):
    _, by_callback = start("hybrid")
    callback(client, by_callback, finished_at=1_000.0)  # epoch seconds far from now: not believed
    _, polled = start("poll")
    _, hybrid_polled = start("hybrid")
    _, by_hand = start("callback")
    TrackedAction.objects.update(next_query_at=timezone.now() - timedelta(hours=1), scheduled=True)
    answer = QueryResult(True, "SUCCESS", {"ok": 2}, finished_at=timezone.now().timestamp())
    Tracker(queries=lambda name: lambda a: answer, thread_pool_size=1).run_once()
    services.complete_action(by_hand.id, "SUCCESS", {"ok": 3})  # as PUT /v2/action_executions/<id> does
    modes = dict(Completion.objects.values_list("action_id", "mode"))
    assert modes == {
        by_callback.id: "hybrid-callback",
        polled.id: "poll",
        hybrid_polled.id: "hybrid-poll",
        by_hand.id: "by hand",
    }
    rows = {c.action_id: c for c in Completion.objects.all()}
    assert rows[by_callback.id].outside_done_at is None
    assert rows[polled.id].polls == 1 and rows[polled.id].outside_done_at is not None
    assert rows[by_hand.id].polls is None


def test_an_overdue_action_failed_by_the_sweep_is_a_timeout():
    ex, action = start()
    ActionExecution.objects.filter(id=action.id).update(deadline=timezone.now() - timedelta(minutes=1))
    Tracker(queries=lambda name: None).run_once()
    assert Completion.objects.get(action_id=action.id).mode == "timeout"


def test_figures_merge_buckets_and_rows_not_rolled_up_yet(client):
    for _ in range(3):
        callback(client, start()[1])
    latency.roll_up(later())
    callback(client, start()[1])  # still raw
    f = latency.figures("1h", now=later())
    assert f["total"] == 4
    [row] = f["modes"]
    assert row["mode"] == "callback" and row["count"] == 4 and row["next"]["n"] == 4
    assert row["next"]["p50"] is not None and row["next"]["p50"] <= row["next"]["p95"] <= row["next"]["p99"]
    assert row["detect"]["n"] == 0  # no finished_at was reported
    assert [a["action_name"] for a in f["actions"]] == ["std.mistral_http"]
    assert f["histograms"]["modes"][0]["mode"] == "callback"
    assert sum(f["histograms"]["modes"][0]["next"]) == 4
    assert len(f["histograms"]["bins"]) == len(f["histograms"]["modes"][0]["next"]) + 1
    assert latency.figures("15m", now=later(3600))["total"] == 0  # outside the window


def test_a_long_window_reads_whole_hours_from_hour_buckets_and_the_rest_from_minute_buckets():
    now = datetime(2026, 12, 1, 12, 30, 20, tzinfo=UTC)

    def bucket(start, span, count):
        CompletionBucket.objects.create(
            minute=start, span=span, mode="poll", action_name="x", count=count, detect_hist={"60": count}
        )

    # 24 h back from 12:30:20 is 12:30:20 yesterday: minutes 12:30..12:59 from minute buckets, then hours.
    yesterday = now - timedelta(days=1)
    for m in (29, 30, 45, 59):
        bucket(yesterday.replace(minute=m, second=0), 1, 1)  # 12:29 is outside the window
    bucket(yesterday.replace(minute=0, second=0), 60, 4)  # the hour that holds them: not read
    for h in range(1, 25):
        bucket(yesterday.replace(minute=0, second=0) + timedelta(hours=h), 60, 10)
    bucket(now.replace(second=0), 1, 10)  # a minute bucket of the current hour: its hour bucket counts it
    f = latency.figures("24h", now=now)
    assert f["total"] == 3 + 24 * 10
    assert latency.figures("1h", now=now)["total"] == 10  # minute buckets only


def test_percentiles_from_the_histogram_are_within_a_bin_of_the_exact_value():
    values = [1.0 * 1.07**k for k in range(200)]  # 1 ms .. ~700 s
    hist = {}
    for v in values:
        latency.add(hist, v)
    ratio = 10 ** (1 / latency.BINS_PER_DECADE)
    for q in (50, 95, 99):
        exact = sorted(values)[int(q / 100 * len(values)) - 1]
        assert exact / ratio <= latency.percentile(hist, q) <= exact * ratio, q
    assert latency.percentile({}, 50) is None
    latency.add(hist, -5.0)  # clock skew: the lowest bin, not an error
    assert hist[str(latency.bin_of(latency.MIN_MS))] == 1


def test_the_outside_time_is_read_leniently_and_never_trusted_blindly():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert latency.outside_time("2026-12-01T11:59:59Z", now) == now - timedelta(seconds=1)
    assert latency.outside_time("2026-12-01 11:59:59", now) == now - timedelta(seconds=1)  # naive = UTC
    assert latency.outside_time(now.timestamp() - 2, now) == now - timedelta(seconds=2)
    for bad in ("yesterday", "x" * 100, True, float("nan"), 1e30, {"a": 1}, None, "1999-01-01T00:00:00Z"):
        assert latency.outside_time(bad, now) is None, bad


def test_old_rows_and_buckets_are_pruned(settings):
    settings.TRACKER = {**settings.TRACKER, "COMPLETIONS": {"RAW_DAYS": 1.0, "BUCKET_DAYS": 2.0}}
    old = timezone.now() - timedelta(days=3)
    Completion.objects.create(
        action_id="a", action_name="x", mode="poll", detected_at=old, recorded_at=old, rolled_up=True
    )
    CompletionBucket.objects.create(minute=old.replace(second=0, microsecond=0), mode="poll", action_name="x", count=1)
    latency.roll_up()
    assert not Completion.objects.exists() and not CompletionBucket.objects.exists()


def test_the_tracker_and_comparison_pages_show_the_live_figures(client, tmp_path, monkeypatch, settings):

    monkeypatch.setitem(settings.TRACKER, "BENCH_RESULTS_DIR", tmp_path)  # a fresh install: no comparison run yet
    callback(client, start()[1])
    for url in ("/tracker/", "/tracker/compare/"):
        page = client.get(url).content.decode()
        assert "Live completion latency" in page and 'id="latency-data"' in page, url
        assert '<tr class="mode-row" data-mode="callback">' in page, url
        assert "tracker-latency.js" in page
    assert "No comparison yet" in client.get("/tracker/compare/").content.decode()
    assert 'data-mode="callback"' in client.get("/tracker/?window=nonsense").content.decode()  # the last 24 h
    Completion.objects.all().delete()
    assert "No async action completed in the last 15m" in client.get("/tracker/?window=15m").content.decode()
