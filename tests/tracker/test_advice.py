"""The recommendation line per action name, derived from the live figures'
rows (pure: no database)."""

from tracker.advice import advise, fmt_ms


def row(mode, name="fetch.build", count=30, p95=None, interval=None, polls=None):
    return {
        "mode": mode,
        "action_name": name,
        "count": count,
        "interval": interval,
        "polls_per_completion": polls,
        "detect": {"n": count if p95 is not None else 0, "p95": p95},
        "next": {"n": count, "p95": 3.0},
    }


def test_polling_an_action_whose_service_sends_callbacks_recommends_hybrid():
    [a] = advise([row("poll", p95=4800.0, interval=5.0, polls=1.2), row("callback", count=12, p95=12.0)])
    assert a.kind == "use hybrid"
    assert a.text == (
        "polling every 5 s costs p95 4.8 s for fetch.build; its service sends callbacks: hybrid would give p95 12 ms."
    )


def test_without_finished_at_the_poll_cost_is_estimated_from_the_interval():
    [a] = advise([row("poll", interval=2.0, polls=1.5), row("hybrid-callback", count=5)])
    assert a.text == (
        "polling every 2 s costs p95 about 1.9 s for fetch.build; its service sends callbacks: "
        "hybrid would answer as its callbacks arrive instead of at the next poll."
    )


def test_too_few_completions_give_no_recommendation_and_say_so():
    [a] = advise([row("poll", count=3, p95=4800.0, interval=5.0), row("callback", count=2, p95=12.0)])
    assert a.kind == "not enough data"
    assert a.text == "fetch.build: 5 completions in this window; a recommendation needs 20."
    assert advise([row("poll", count=3)], min_completions=3)[0].kind != "not enough data"


def test_hybrid_results_that_mostly_come_by_polling_mean_lost_callbacks():
    [a] = advise([row("hybrid-poll", count=24, interval=1.0, p95=900.0), row("hybrid-callback", count=6, p95=8.0)])
    assert a.kind == "callbacks lost"
    assert a.text.startswith("fetch.build: 80% of its hybrid results came by polling (detection p95 900 ms)")


def test_many_polls_per_completion_suggest_a_longer_interval():
    [a] = advise([row("poll", count=40, interval=1.0, polls=30.0)])
    assert a.kind == "poll less often"
    assert a.text == (
        "fetch.build: 30 status queries per completion at every 1 s; polling every 6 s would need "
        "about 5 (p95 about 5.7 s), or let its service call back."
    )


def test_callbacks_only_and_other_mixes_need_no_change():
    advice = advise(
        [
            row("callback", name="b.cb", p95=9.0),
            row("by hand", name="a.hand", count=25),
            row("poll", name="c.poll", count=20, interval=1.0, polls=2.0),
        ]
    )
    assert [(a.action_name, a.kind) for a in advice] == [("a.hand", "fine"), ("b.cb", "fine"), ("c.poll", "fine")]
    assert advice[1].text == "b.cb: nothing to change (callback 30)."
    assert advise([]) == []


def test_durations_are_shown_with_two_significant_digits():
    assert [fmt_ms(v) for v in (0.42, 12.3, 480.0, 4800.0, 65_000.0)] == ["0.42 ms", "12 ms", "480 ms", "4.8 s", "65 s"]
