"""The counting of ``manage.py cron_bench`` (bench/cron.py), without its
processes: a duplicate fire in one minute is found, and the totals add up."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from bench import cron as bench_cron
from workflows import services, triggers
from workflows.models import CronTrigger, WorkflowExecution

pytestmark = pytest.mark.django_db


def test_verify_counts_executions_per_trigger_and_finds_a_duplicate():
    bench_cron.seed(2, 3)
    CronTrigger.objects.update(next_execution_time=timezone.now() - dt.timedelta(seconds=1))
    assert triggers.fire_due() == 2
    seen = bench_cron.verify()
    assert seen == {
        "executions": 2,
        "per_trigger": [1, 1],
        "duplicates": 0,
        "states": {"SUCCESS": 2},
        "triggers_left": 2,
    }
    one = CronTrigger.objects.first()
    services.start_execution(bench_cron.WORKFLOW, {}, description=triggers.description_for(one))  # a second fire
    assert bench_cron.verify()["duplicates"] == 1
    assert WorkflowExecution.objects.count() == 3
