"""The polling results tracker, driven one cycle at a time with a fake query
function and a controlled clock."""

import http.server
import json
import threading
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from tracker.models import TrackedAction, TrackerProcess
from tracker.queries import ActionInfo, QueryResult, http_status
from tracker.runner import Tracker
from workflows import services
from workflows.models import ActionExecution

pytestmark = pytest.mark.django_db


def polled_wf(mode="poll", extra="", url="http://127.0.0.1:9/never-called"):
    return f"""
version: '2.0'
polled:
  output: {{got: <% $.got %>}}
  tasks:
    job:
      action: std.mistral_http
      input:
        url: {url}
        tracking: {mode}
        status_url: http://127.0.0.1:9/status
        {extra}
      publish: {{got: <% task().result %>}}
"""


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


class FakeQueries:
    """Answers from a script per action; records every call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, action_name):
        def query(action):
            self.calls.append(action.id)
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return query


def start(mode="poll", extra=""):
    services.save_workflows(polled_wf(mode, extra), update=True)
    ex = services.start_execution("polled")  # the worker job is not run: no outside call here
    return ex, ActionExecution.objects.get(workflow_execution=ex)


def test_a_poll_mode_action_is_tracked_from_the_start_and_completed_by_the_tracker(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 2.0}
    ex, action = start()
    row = TrackedAction.objects.get(action=action)
    assert row.mode == "poll"
    clock = Clock()
    fake = FakeQueries(QueryResult.running(), QueryResult(True, "SUCCESS", {"n": 7}))
    tracker = Tracker(queries=fake, clock=clock, thread_pool_size=1)
    # Leased, not queried yet: the tracker only set its first query time, in its memory.
    assert tracker.run_once() == {"claimed": 1, "queried": 0, "completed": 0, "running": 0, "errors": 0}
    row.refresh_from_db()
    assert row.claimed_by == tracker.name
    assert tracker.schedule() == {action.id: row.created_at + timedelta(seconds=2)}
    clock.advance(2.1)
    assert tracker.run_once() == {"claimed": 0, "queried": 1, "completed": 0, "running": 1, "errors": 0}
    # On the item's grid: the previous due time + the interval, not "now + interval".
    assert abs(tracker.schedule()[action.id] - (row.created_at + timedelta(seconds=4))) < timedelta(milliseconds=1)
    clock.advance(2.0)
    assert tracker.run_once()["completed"] == 1
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"n": 7}}
    assert not TrackedAction.objects.exists()
    assert fake.calls == [action.id, action.id]


def test_callback_mode_actions_are_not_polled_and_hybrid_waits_for_its_grace(settings):
    settings.TRACKER = {**settings.TRACKER, "HYBRID_GRACE": 30.0}
    start("callback")
    assert not TrackedAction.objects.exists()
    before = timezone.now()
    ex, action = start("hybrid")
    row = TrackedAction.objects.get(action=action)
    assert row.mode == "hybrid" and not row.scheduled
    tracker = Tracker(queries=FakeQueries(QueryResult.running()))
    assert tracker.run_once()["queried"] == 0
    assert tracker.schedule()[action.id] >= before + timedelta(seconds=30)
    assert tracker.release() == 1  # released, its first query time is written back
    row.refresh_from_db()
    assert row.scheduled and row.next_query_at >= before + timedelta(seconds=30) and row.claimed_by is None


def test_the_first_query_time_comes_from_the_tracker_that_claims_the_item(settings):
    """The web process's QUERY_INTERVAL (here 5 s) does not matter: the
    tracker's (1 s) does; a per-action query_interval wins over both."""
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 5.0}
    ex, action = start()
    ex2, own = start(extra="query_interval: 3")
    clock = Clock()
    tracker = Tracker(queries=FakeQueries(QueryResult.running()), clock=clock, query_interval=1.0, thread_pool_size=1)
    tracker.run_once()
    rows = {r.action_id: r for r in TrackedAction.objects.all()}
    due = tracker.schedule()
    assert due[action.id] == rows[action.id].created_at + timedelta(seconds=1)
    assert due[own.id] == rows[own.id].created_at + timedelta(seconds=3)
    assert rows[own.id].query_interval == 3.0
    clock.advance(1.5)
    assert tracker.run_once()["queried"] == 1  # the 1 s one only


def test_an_item_already_older_than_its_first_interval_is_queried_in_the_same_cycle():
    ex, action = start()
    clock = Clock()
    clock.advance(3600)
    fake = FakeQueries(QueryResult.running())
    assert Tracker(queries=fake, clock=clock, thread_pool_size=1).run_once()["queried"] == 1
    assert fake.calls == [action.id]


def test_polling_a_still_running_item_costs_no_sql():
    """The schedule lives in the tracker's memory while it holds the lease:
    a cycle that only asks held items again writes nothing and reads nothing."""
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    actions = [start()[1] for _ in range(5)]
    clock = Clock()
    clock.advance(3600)
    fake = FakeQueries(QueryResult.running())
    tracker = Tracker(queries=fake, clock=clock, thread_pool_size=1)
    assert tracker.run_once(periodic=False)["queried"] == 5
    clock.advance(tracker.query_interval)
    tracker._last_claim = tracker._last_renew = tracker._last_beat = clock.now.timestamp()  # nothing else due
    with CaptureQueriesContext(conn) as queries:
        assert tracker.run_once(periodic=False) == {
            "claimed": 0,
            "queried": 5,
            "completed": 0,
            "running": 5,
            "errors": 0,
        }
    statements = [q["sql"] for q in queries.captured_queries]
    assert [sql for sql in statements if "tracker_trackedaction" in sql] == []
    assert len(fake.calls) == 10 and set(fake.calls) == {a.id for a in actions}
    assert tracker.release() == 5  # the counts go back with the lease
    assert {r.queries for r in TrackedAction.objects.all()} == {2}


def test_a_new_tracker_takes_its_share_and_a_tracker_over_its_share_releases_the_rest(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 1.0}
    for _ in range(40):
        start()
    clock = Clock()
    clock.advance(3600)
    first = Tracker(name="first", queries=FakeQueries(QueryResult.running()), clock=clock, thread_pool_size=1)
    assert first.run_once()["queried"] == 40  # alone: it takes everything
    second = Tracker(name="second", queries=FakeQueries(QueryResult.running()), clock=clock, thread_pool_size=1)
    second._beat()  # alive
    assert second.run_once()["claimed"] == 0  # nothing free
    clock.advance(first.renew_every())
    first.run_once()  # its renewal sees the other tracker and keeps about half
    assert len(first.schedule()) == 20
    freed = TrackedAction.objects.filter(claimed_by__isnull=True)
    assert freed.count() == 20 and all(r.scheduled for r in freed)
    clock.advance(first.query_interval)
    second.run_once()
    assert len(second.schedule()) == 20
    assert set(first.schedule()).isdisjoint(second.schedule())


def test_a_many_batch_is_split_across_the_pool():
    from tracker.runner import MIN_CHUNK, Item

    def many(actions):
        return {}

    many.many = True
    tracker = Tracker(queries=lambda name: many, thread_pool_size=4)
    info = ActionInfo("a", "x.y", {}, {})
    items = [Item(n, f"a{n}", None, 0, 0, "poll", 0.0, info) for n in range(4 * MIN_CHUNK + 1)]
    jobs = tracker._jobs(items)
    assert [len(batch) for _, batch in jobs] == [201, 201, 201, 198]
    assert sorted(i.id for _, batch in jobs for i in batch) == list(range(4 * MIN_CHUNK + 1))
    assert [len(b) for _, b in tracker._jobs(items[:30])] == [30]  # small batches stay one request


def test_a_callback_first_removes_the_tracking_row():
    ex, action = start("hybrid")
    services.complete_action(action.id, "SUCCESS", {"by": "callback"})
    assert not TrackedAction.objects.exists()


def test_query_errors_back_off_and_never_drop_the_item(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 1.0, "MAX_BACKOFF": 5.0}
    ex, action = start()
    clock = Clock()
    tracker = Tracker(queries=FakeQueries(RuntimeError("status service down")), clock=clock, thread_pool_size=1)
    waits = []
    for _ in range(4):
        clock.advance(10)
        assert tracker.run_once()["errors"] == 1
        row = TrackedAction.objects.get(action=action)
        waits.append((row.next_query_at - clock.now).total_seconds())
    assert waits == [2.0, 4.0, 5.0, 5.0]
    assert row.errors == 4 and "status service down" in row.last_error
    action.refresh_from_db()
    assert action.state == "RUNNING"


@pytest.mark.parametrize(
    "answer, said",
    [
        (QueryResult(True), "answered done with state None; a finished action is SUCCESS or ERROR"),
        (QueryResult(True, "DONE", {"x": 1}), "answered done with state 'DONE'"),
        ({"state": "SUCCESS"}, "a query function answered dict, not a QueryResult"),
    ],
)
def test_a_query_function_that_answers_done_without_success_or_error_keeps_the_item_and_says_why(answer, said):
    """The engine would refuse such a result; the action must not be left
    RUNNING with nobody polling it."""
    ex, action = start()
    clock = Clock()
    clock.advance(3600)
    counts = Tracker(queries=FakeQueries(answer), clock=clock, thread_pool_size=1).run_once()
    assert counts["errors"] == 1 and counts["completed"] == 0
    row = TrackedAction.objects.get(action=action)
    assert said in row.last_error and row.errors == 1
    action.refresh_from_db()
    assert action.state == "RUNNING"


def test_a_result_that_can_not_be_applied_is_retried_with_a_back_off(monkeypatch, settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 1.0}
    ex, action = start()
    clock = Clock()
    clock.advance(3600)
    tracker = Tracker(queries=FakeQueries(QueryResult(True, "SUCCESS", {"n": 1})), clock=clock, thread_pool_size=1)
    real_complete = services.complete_action

    def broken(*args, **kwargs):
        raise RuntimeError("engine bug")

    monkeypatch.setattr(services, "complete_action", broken)
    assert tracker.run_once()["errors"] == 1
    row = TrackedAction.objects.get(action=action)
    assert row.errors == 1 and "engine bug" in row.last_error and row.claimed_by == tracker.name
    monkeypatch.setattr(services, "complete_action", real_complete)
    clock.advance(2.0)  # the back-off: two intervals
    assert tracker.run_once()["completed"] == 1
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and not TrackedAction.objects.exists()


def test_work_lives_in_the_database_and_a_new_tracker_picks_up_expired_claims(settings):
    ex, action = start()
    clock = Clock()
    clock.advance(10)
    crashed = Tracker(name="crashed", queries=FakeQueries(QueryResult.running()), clock=clock)
    assert [r.action_id for r in crashed.claim(clock.now)] == [action.id]
    fresh = Tracker(name="fresh", queries=FakeQueries(QueryResult(True, "SUCCESS", 1)), clock=clock)
    assert fresh.claim(clock.now) == []  # still leased by the crashed one
    clock.advance(settings.TRACKER.get("LEASE", 60) + 1)
    assert fresh.run_once()["completed"] == 1


def test_a_dead_trackers_rows_are_taken_over_a_batch_at_a_time_until_none_are_left(settings):
    settings.TRACKER = {**settings.TRACKER, "BATCH": 2, "LEASE": 60.0}
    for _ in range(5):
        start()
    clock = Clock()
    dead = Tracker(name="dead", queries=FakeQueries(QueryResult.running()), clock=clock)
    while dead.run_once()["claimed"]:
        pass
    assert TrackedAction.objects.filter(claimed_by="dead").count() == 5
    clock.advance(61)  # its lease ran out
    heir = Tracker(name="heir", queries=FakeQueries(QueryResult.running()), clock=clock, thread_pool_size=1)
    taken = [heir.run_once()["claimed"] for _ in range(3)]
    assert taken == [2, 2, 1] and TrackedAction.objects.filter(claimed_by="heir").count() == 5


@pytest.mark.django_db(transaction=True)
def test_two_trackers_never_claim_the_same_item(outside_service):
    services.save_workflows(polled_wf(url=outside_service.url), update=True)
    ids = {services.start_execution("polled").id for _ in range(30)}
    assert TrackedAction.objects.count() == 30
    later = timezone.now() + timedelta(seconds=60)
    claimed = {}
    barrier = threading.Barrier(2)

    def claim(name):
        barrier.wait()
        claimed[name] = {r.id for r in Tracker(name=name).claim(later)}
        connection.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert claimed["a"].isdisjoint(claimed["b"])
    assert len(claimed["a"] | claimed["b"]) == 30 == len(ids)


@pytest.mark.django_db(transaction=True)
def test_stop_releases_claims_and_records_the_process(outside_service):
    services.save_workflows(polled_wf(url=outside_service.url), update=True)
    action = ActionExecution.objects.get(workflow_execution=services.start_execution("polled"))
    tracker = Tracker(name="t1", queries=FakeQueries(QueryResult.running()))
    tracker.start()
    tracker.claim(timezone.now() + timedelta(seconds=60))
    tracker.stop()
    assert TrackedAction.objects.get(action=action).claimed_by is None
    assert TrackerProcess.objects.get(name="t1").stopped_at is not None


def test_track_result_starts_and_stops_tracking_by_hand():
    services.save_workflows(polled_wf("callback"), update=True)
    ex = services.start_execution("polled")
    action = ActionExecution.objects.get(workflow_execution=ex)
    out = call_command("track_result", action.id)
    assert TrackedAction.objects.get(action=action).added_by == "track_result"
    assert out is None
    call_command("track_result", action.id, "--delete")
    assert not TrackedAction.objects.exists()


def test_track_result_explains_what_it_can_not_do(capsys):
    services.save_workflows("version: '2.0'\na:\n  tasks:\n    w: {action: std.async_noop}\n")
    ex = services.start_execution("a")
    action = ActionExecution.objects.get(workflow_execution=ex)
    with pytest.raises(CommandError, match="No query function for std.async_noop"):
        call_command("track_result", action.id)
    with pytest.raises(CommandError, match="ActionExecution not found"):
        call_command("track_result", "nope")
    services.complete_action(action.id, "SUCCESS", 1)
    with pytest.raises(CommandError, match="is SUCCESS; there is nothing to track"):
        call_command("track_result", action.id)
    call_command("track_result", action.id, "--delete")
    assert "was not tracked" in capsys.readouterr().out


def test_stats_show_tracked_items_lag_and_errors(client, settings):
    start()
    TrackedAction.objects.update(next_query_at=timezone.now() - timedelta(seconds=5), errors=2)
    body = client.get("/api/tracker/stats").json()
    assert body["tracked"] == 1 and body["due"] == 1 and body["erroring"] == 1
    assert body["lag_s"] >= 5
    assert body["query_interval"] == settings.TRACKER["QUERY_INTERVAL"]


class _Status(http.server.BaseHTTPRequestHandler):
    answers = {}

    def do_GET(self):
        body = json.dumps(self.answers.get(self.path, {})).encode()
        self.send_response(200 if self.path in self.answers else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def status_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Status.answers
    server.shutdown()
    _Status.answers.clear()


def test_the_http_status_query_reads_state_and_output(status_server):
    base, answers = status_server
    answers["/running"] = {"state": "RUNNING"}
    answers["/done"] = {"status": "done", "result": {"rows": 3}}
    answers["/failed"] = {"state": "FAILED", "output": "disk full"}

    class A:
        name = "gust.http_job"
        runtime_context = {}

        def __init__(self, path):
            self.input = {"status_url": base + path}

    assert http_status(A("/running")) == QueryResult(False)
    assert http_status(A("/done")) == QueryResult(True, "SUCCESS", {"rows": 3})
    assert http_status(A("/failed")) == QueryResult(True, "ERROR", "disk full")
    with pytest.raises(Exception, match="404"):
        http_status(A("/missing"))


def batch_query(actions):
    batch_query.calls.append(sorted(a.id for a in actions))
    first = sorted(a.id for a in actions)[0]
    return {first: QueryResult(True, "SUCCESS", "batched"), "unknown": QueryResult.running()}


batch_query.many = True
batch_query.calls = []


def test_a_batch_query_function_answers_many_actions_in_one_call(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERIES": {"std.mistral_http": "tests.tracker.test_tracker.batch_query"}}
    batch_query.calls.clear()
    actions = [start()[1] for _ in range(3)]
    clock = Clock()
    clock.advance(3600)
    counts = Tracker(clock=clock, thread_pool_size=4).run_once()
    assert counts == {"claimed": 3, "queried": 3, "completed": 1, "running": 2, "errors": 0}
    assert batch_query.calls == [sorted(a.id for a in actions)]
    assert TrackedAction.objects.count() == 2


def test_an_overdue_action_whose_failing_raises_does_not_stop_the_sweep(
    monkeypatch, caplog, client, django_capture_on_commit_callbacks
):
    services.save_workflows(
        "version: '2.0'\nlost:\n  tasks:\n    call:\n      action: std.http url=http://127.0.0.1:9/x\n"
    )
    with django_capture_on_commit_callbacks(execute=False):  # their worker jobs are lost
        actions = [ActionExecution.objects.get(workflow_execution=services.start_execution("lost")) for _ in range(3)]
    for minutes, action in zip((30, 20, 10), actions, strict=True):  # the broken one is the oldest, swept first
        ActionExecution.objects.filter(id=action.id).update(deadline=timezone.now() - timedelta(minutes=minutes))
    broken = actions[0]
    real_complete = services.complete_action

    def complete(action_id, state, output=None):
        if action_id == broken.id:
            raise RuntimeError("corrupt row")
        return real_complete(action_id, state, output)

    monkeypatch.setattr(services, "complete_action", complete)
    tracker = Tracker(name="sweeper", queries=FakeQueries(QueryResult.running()))
    tracker.run_once()

    states = {a.id: a.state for a in ActionExecution.objects.filter(id__in=[a.id for a in actions])}
    assert states == {broken.id: "RUNNING", actions[1].id: "ERROR", actions[2].id: "ERROR"}
    assert f"overdue action {broken.id} could not be failed" in caplog.text
    assert "RuntimeError: corrupt row" in caplog.text
    tracker._beat()
    body = client.get("/api/tracker/stats").json()
    assert [p["periodic_errors"] for p in body["processes"] if p["name"] == "sweeper"] == [1]
    assert body["overdue"] == 1

    monkeypatch.setattr(services, "complete_action", real_complete)  # the row is repaired
    tracker.run_once()
    assert ActionExecution.objects.get(id=broken.id).state == "ERROR"
    assert tracker.counters["periodic_errors"] == 1


def test_track_result_prints_the_real_interval(capsys, settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 2.5}
    services.save_workflows(polled_wf("callback"), update=True)
    action = ActionExecution.objects.get(workflow_execution=services.start_execution("polled"))
    call_command("track_result", action.id)
    assert "(2.5 s with this process's settings)" in capsys.readouterr().out
    call_command("track_result", action.id, "--query-interval", "7")
    assert "every 7 s" in capsys.readouterr().out


def test_track_result_refuses_a_handed_over_job_without_a_status_url():
    services.save_workflows(
        polled_wf("callback").replace("        status_url: http://127.0.0.1:9/status\n", ""), update=True
    )
    action = ActionExecution.objects.get(workflow_execution=services.start_execution("polled"))
    ActionExecution.objects.filter(id=action.id).update(runtime_context={"handed_over_at": "2026-01-01T00:00:00"})
    with pytest.raises(CommandError, match="has no status_url to poll"):
        call_command("track_result", action.id)
    assert not TrackedAction.objects.exists()


def test_no_status_url_before_the_hand_over_is_a_wait_not_an_error():
    from tracker.queries import http_status

    services.save_workflows(
        polled_wf("callback").replace("        status_url: http://127.0.0.1:9/status\n", ""), update=True
    )
    action = ActionExecution.objects.get(workflow_execution=services.start_execution("polled"))
    ActionExecution.objects.filter(id=action.id).update(runtime_context={})
    action.refresh_from_db()
    assert http_status(action) == QueryResult.running()


def test_a_tracking_mode_that_does_not_exist_is_refused_at_upload():
    from workflows.errors import InvalidDefinition

    with pytest.raises(InvalidDefinition) as refused:
        services.save_workflows(polled_wf("sometimes"))
    assert any("must be callback | poll | hybrid, not 'sometimes'" in e["message"] for e in refused.value.errors)
    services.save_workflows(polled_wf("<% $.mode %>").replace("polled:", "exprmode:"))  # decided at run time


def test_an_action_tracked_by_hand_loses_its_row_when_a_callback_completes_it():
    services.save_workflows(polled_wf("callback"), update=True)
    ex = services.start_execution("polled")
    action = ActionExecution.objects.get(workflow_execution=ex)
    call_command("track_result", action.id)
    assert TrackedAction.objects.filter(action=action).exists()
    services.complete_action(action.id, "SUCCESS", {"by": "callback"})
    assert not TrackedAction.objects.exists()


def test_the_loop_calls_each_periodic_hook_as_often_as_its_period(settings):
    """The inbox every second, the sweeps and the configured hooks every
    2 s, redispatch and the latency roll-up every 10 s."""
    from tracker import runner

    settings.TRACKER = {**settings.TRACKER, "PERIODIC": ["approvals.services.sweep"]}
    tracker = Tracker(clock=Clock())
    every = dict(runner.HOOKS)
    calls = {path: 0 for path in [*every, "approvals.services.sweep"]}
    for tick in range(20):
        for path in tracker._due_hooks(1000.0 + tick):
            calls[path] += 1
    assert calls == {**{path: 20 // int(seconds) for path, seconds in every.items()}, "approvals.services.sweep": 10}
    assert calls["tracker.services.process_inbox"] == 20 and calls["tracker.latency.roll_up"] == 2


@pytest.mark.parametrize(
    "batched, interval, second_cycle", [(True, 1.0, [2, 3, 4]), (False, 1.0, [2, 3]), (True, 0.1, [2, 3])]
)
def test_batched_items_are_taken_further_ahead_at_intervals_of_a_second(batched, interval, second_cycle):
    """A wake-up costs more than the items it serves when one request asks
    for them all: after a wake-up whose items were all batched, items due
    within a quarter interval (at most 0.25 s) are taken; otherwise, and at
    sub-second intervals, within a tenth."""
    import heapq
    from datetime import UTC, datetime

    from tracker.runner import Item

    def many(actions):
        return {}

    many.many = True

    def one(action):
        return QueryResult.running()

    now = [1000.0]
    tracker = Tracker(
        queries=lambda name: many if batched else one,
        clock=lambda: datetime.fromtimestamp(now[0], tz=UTC),
        query_interval=interval,
        thread_pool_size=1,
    )
    tracker.sync = lambda at: []  # no database here: the items are already held
    tracker._attach_actions = lambda items: None
    step = interval / 10
    for n, due in enumerate([0.0, 0.5 * step, 1.5 * step, 1.9 * step, 2.9 * step]):
        item = Item(n, f"a{n}", None, 0, 0, "poll", 1000.0 + due, ActionInfo(f"a{n}", "x.y", {}, {}))
        tracker._held[n] = item
        heapq.heappush(tracker._heap, (item.due, n))
    taken = []
    tracker._run_jobs = lambda jobs: taken.append(sorted(i.id for _, b in jobs for i in b)) or []
    tracker.run_once(periodic=False)
    assert taken == [[0, 1]]
    now[0] += step
    tracker.run_once(periodic=False)
    assert taken[1] == second_cycle
