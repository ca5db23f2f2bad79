"""Cron trigger times, as Mistral's ``mistral/services/triggers.py`` and
``mistral/services/periodic.py`` compute them (pure: no Django, no I/O;
naive datetimes in UTC, as Mistral stores them).

- ``first_schedule``: at creation, the checks of
  ``validate_cron_trigger_input`` and the first due time and count.
- ``advance``: after a due time fired, the next one (from the later of now
  and the due time, so a trigger that missed several times while nobody
  ran fires once, then at the next time of its pattern) and the count left;
  ``None`` when the trigger is used up and is deleted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import croniter

FIRST_TIME_FORMAT = "%Y-%m-%d %H:%M"
PATTERN_MAX = 100  # Mistral's column


class CronError(ValueError):
    """Mistral's InvalidModelException: a 400 with this message."""


def next_time(pattern: str, start: dt.datetime) -> dt.datetime:
    """Mistral's ``get_next_execution_time``."""
    return croniter.croniter(pattern, start).get_next(dt.datetime)


def parse_first_time(value: str | dt.datetime | None) -> dt.datetime | None:
    """``first_execution_time`` as the CLI sends it (``YYYY-MM-DD HH:MM``, UTC)."""
    if isinstance(value, dt.datetime):
        return value
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CronError(f"first_execution_time must be a string 'YYYY-MM-DD HH:MM', got {value!r}")
    try:
        return dt.datetime.strptime(value, FIRST_TIME_FORMAT)
    except ValueError as exc:
        raise CronError(str(exc)) from None


def validate(pattern: str | None, first_time: dt.datetime | None, count: int | None, now: dt.datetime) -> None:
    """Mistral's ``validate_cron_trigger_input``; raises CronError."""
    if not (first_time or pattern):
        raise CronError("Pattern or first_execution_time must be specified.")
    if first_time:
        if now + dt.timedelta(seconds=60) > first_time:
            raise CronError("first_execution_time must be at least 1 minute in the future.")
        if not pattern and count and count > 1:
            raise CronError("Pattern must be provided if count is superior to 1.")
    if pattern:
        if len(pattern) > PATTERN_MAX:
            raise CronError(f"The specified pattern is not valid: it is longer than {PATTERN_MAX} characters")
        try:
            croniter.croniter(pattern, now)
        except (ValueError, KeyError):
            raise CronError(f"The specified pattern is not valid: {pattern}") from None


@dataclass(frozen=True)
class Schedule:
    next_execution_time: dt.datetime
    remaining_executions: int | None


def first_schedule(
    pattern: str | None, first_time: dt.datetime | None, count: int | None, now: dt.datetime
) -> Schedule:
    """The checks and the first due time of a new trigger (Mistral's
    ``create_cron_trigger``): ``first_time`` when given (a one-shot trigger
    without pattern and count runs once), else the pattern's next time."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise CronError(f"remaining_executions must be an integer of at least 1, got {count!r}")
    validate(pattern, first_time, count, now)
    if first_time:
        return Schedule(first_time, 1 if not (pattern or count) else count)
    assert pattern  # validate() refused neither
    return Schedule(next_time(pattern, now), count)


def advance(
    pattern: str | None, next_execution_time: dt.datetime, remaining: int | None, now: dt.datetime
) -> Schedule | None:
    """Mistral's ``advance_cron_trigger``: the schedule after the due time
    ``next_execution_time`` fired, or None when that was the last one."""
    if remaining is not None and remaining > 0:
        remaining -= 1
    if remaining == 0 or not pattern:
        return None
    return Schedule(next_time(pattern, max(now, next_execution_time)), remaining)
