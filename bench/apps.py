from __future__ import annotations

import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark commands (bench/README.md). This app imports Gust and is
    imported by no part of it; the benchmarks switch their counters on in the
    processes they start through the environment."""

    name = "bench"

    def ready(self) -> None:
        if os.environ.get("GUST_COUNT_QUERIES_DIR"):
            from bench import querycount  # noqa: F401 -- SQL counts for compare_completion
        if os.environ.get("GUST_BENCH_RUNS_DIR"):
            from bench import runcount  # noqa: F401 -- action runs for broker_bench
