"""The execution timeline's geometry (core.timeline): pure, no database."""

from datetime import UTC, datetime, timedelta

from core import timeline
from core.timeline import Span

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_bars_are_placed_in_percent_of_the_whole_run():
    chart = timeline.build(
        [Span("a", "a", "a", "SUCCESS", at(0), at(2)), Span("b", "b", "b", "SUCCESS", at(5), at(10))],
        now=at(100),
        start=at(0),
        end=at(10),
    )
    assert [(r.left, r.width) for r in chart.rows] == [(0.0, 20.0), (50.0, 50.0)]
    assert chart.seconds == 10
    assert [r.running for r in chart.rows] == [False, False]


def test_a_running_span_is_drawn_to_now_and_stretches_the_axis():
    chart = timeline.build(
        [Span("a", "a", "a", "SUCCESS", at(0), at(1)), Span("b", "b", "wait", "RUNNING", at(1), None)],
        now=at(4),
        start=at(0),
    )
    a, b = chart.rows
    assert chart.seconds == 4
    assert (b.left, b.width, b.running, b.seconds) == (25.0, 75.0, True, 3.0)
    assert a.width == 25.0


def test_an_instant_span_is_still_visible_and_stays_inside_the_chart():
    chart = timeline.build([Span("a", "a", "a", "SUCCESS", at(10), at(10))], now=at(10), start=at(0))
    (row,) = chart.rows
    assert row.width == timeline.MIN_WIDTH
    assert row.left + row.width <= 100


def test_spans_that_never_started_are_left_out_and_rows_are_bounded(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_ROWS", 3)
    spans = [Span(str(i), "t", "t", "SUCCESS", at(i), at(i + 1)) for i in range(5)]
    spans.append(Span("x", "t", "t", "IDLE", None, None))
    chart = timeline.build(spans, now=at(9))
    assert [r.span.key for r in chart.rows] == ["0", "1", "2"]
    assert chart.hidden == 2


def test_no_span_gives_an_empty_chart():
    chart = timeline.build([], now=at(1), start=at(0))
    assert chart.rows == () and chart.ticks == ()


def test_axis_ticks_use_a_round_step_and_read_as_offsets():
    chart = timeline.build([Span("a", "a", "a", "SUCCESS", at(0), at(10))], now=at(10), start=at(0))
    assert [t.label for t in chart.ticks] == ["0", "+2 s", "+4 s", "+6 s", "+8 s", "+10 s"]
    assert [t.left for t in chart.ticks] == [0, 20, 40, 60, 80, 100]
    short = timeline.build([Span("a", "a", "a", "SUCCESS", at(0), at(0.3))], now=at(1), start=at(0))
    assert [t.label for t in short.ticks] == ["0", "+50 ms", "+100 ms", "+150 ms", "+200 ms", "+250 ms", "+300 ms"]


def test_offset_labels_for_long_runs():
    assert timeline.offset_label(90, 30) == "+1m 30s"
    assert timeline.offset_label(7200, 3600) == "+2h"
    assert timeline.offset_label(5400, 1800) == "+1h 30m"
    assert timeline.offset_label(3 * 86400, 86400) == "+3d"
    assert timeline.offset_label(1.5, 0.5) == "+1.5 s"
