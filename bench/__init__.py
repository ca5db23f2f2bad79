"""Benchmarks and the reliability report (bench/README.md): a Django app of
commands that imports Gust; no part of Gust imports it."""
