"""Cron trigger times without a database, as Mistral's
mistral/services/triggers.py and periodic.py (advance_cron_trigger) compute
them; cases from mistral/tests/unit/services/test_trigger_service.py."""

from __future__ import annotations

import datetime as dt

import pytest

from core import cron

NOW = dt.datetime(2010, 8, 25)


def test_the_first_time_of_a_pattern_is_its_next_time_after_now():
    """test_trigger_create: */5 from 2010-08-25 00:00 is 00:05, then 00:10."""
    first = cron.first_schedule("*/5 * * * *", None, None, NOW)
    assert first == cron.Schedule(dt.datetime(2010, 8, 25, 0, 5), None)
    assert cron.next_time("*/5 * * * *", first.next_execution_time) == dt.datetime(2010, 8, 25, 0, 10)


def test_get_next_execution_time_crosses_midnight():
    """test_get_next_execution_time."""
    assert cron.next_time("*/20 * * * *", dt.datetime(2016, 3, 22, 23, 40)) == dt.datetime(2016, 3, 23, 0, 0)


def test_a_one_shot_trigger_runs_once_at_its_first_time():
    """test_oneshot_trigger_create: no pattern, no count: count 1."""
    first_time = cron.parse_first_time("4242-12-25 13:37")
    first = cron.first_schedule(None, first_time, None, NOW)
    assert first == cron.Schedule(dt.datetime(4242, 12, 25, 13, 37), 1)
    assert cron.advance(None, first.next_execution_time, 1, first.next_execution_time) is None


def test_a_first_time_with_a_pattern_fires_then_follows_the_pattern():
    first_time = dt.datetime(2010, 8, 25, 1, 2)
    first = cron.first_schedule("*/10 * * * *", first_time, 3, NOW)
    assert first == cron.Schedule(first_time, 3)
    assert cron.advance("*/10 * * * *", first_time, 3, first_time) == cron.Schedule(dt.datetime(2010, 8, 25, 1, 10), 2)


def test_the_count_goes_down_and_the_last_fire_deletes_the_trigger():
    due = dt.datetime(2010, 8, 25, 0, 1)
    assert cron.advance("* * * * *", due, 2, due) == cron.Schedule(dt.datetime(2010, 8, 25, 0, 2), 1)
    assert cron.advance("* * * * *", due, 1, due) is None
    assert cron.advance("* * * * *", due, None, due) == cron.Schedule(dt.datetime(2010, 8, 25, 0, 2), None)


def test_times_missed_while_nothing_ran_fire_once_then_the_next_future_time():
    """advance_cron_trigger: the next time counts from max(now, due time)."""
    due = dt.datetime(2010, 8, 25, 0, 1)
    later = dt.datetime(2010, 8, 25, 3, 17, 30)
    assert cron.advance("* * * * *", due, None, later) == cron.Schedule(dt.datetime(2010, 8, 25, 3, 18), None)


@pytest.mark.parametrize(
    "pattern, first_time, count, message",
    [
        (None, None, None, "Pattern or first_execution_time must be specified."),
        (None, NOW + dt.timedelta(seconds=1), None, "first_execution_time must be at least 1 minute in the future."),
        (None, NOW - dt.timedelta(days=1), None, "first_execution_time must be at least 1 minute in the future."),
        (None, NOW + dt.timedelta(hours=1), 2, "Pattern must be provided if count is superior to 1."),
        ("not a pattern", None, None, "The specified pattern is not valid: not a pattern"),
        ("61 * * * *", None, None, "The specified pattern is not valid: 61 * * * *"),
        ("* * * * *", None, 0, "remaining_executions must be an integer of at least 1, got 0"),
        ("* * * * *", None, "3", "remaining_executions must be an integer of at least 1, got '3'"),
    ],
)
def test_bad_trigger_input_is_refused_with_mistrals_message(pattern, first_time, count, message):
    """validate_cron_trigger_input, and test_validate_cron_trigger_input_first_time."""
    with pytest.raises(cron.CronError) as err:
        cron.first_schedule(pattern, first_time, count, NOW)
    assert str(err.value) == message


def test_a_first_time_that_does_not_parse_is_refused():
    with pytest.raises(cron.CronError, match="does not match format"):
        cron.parse_first_time("25/12/4242")
    assert cron.parse_first_time(None) is None and cron.parse_first_time("") is None
