"""Count worker action runs, for ``manage.py broker_bench``.

Imported by bench.apps only when ``GUST_BENCH_RUNS_DIR`` is set (the
benchmark sets it for the worker processes it starts). ``std.sleep`` then
runs through ``sleep`` below, which appends the action execution's id to
``<dir>/runs-<pid>.txt`` before sleeping: a job whose action ran twice shows
its id twice, whatever the broker or the worker believed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from core import actions

_dir = Path(os.environ.get("GUST_BENCH_RUNS_DIR", "."))
_REAL = actions.BUILTIN["std.sleep"].impl
_files: dict[int, object] = {}


def sleep(inp: dict, action) -> None:
    from django.utils.module_loading import import_string

    pid = os.getpid()
    f = _files.get(pid)
    if f is None:  # a forked worker opens its own file
        f = _files[pid] = open(_dir / f"runs-{pid}.txt", "a", buffering=1)
    f.write(f"{action.id}\n")
    return import_string(_REAL)(inp, action)


actions.BUILTIN["std.sleep"] = dataclasses.replace(actions.BUILTIN["std.sleep"], impl="bench.runcount.sleep")


def read_all(directory: Path) -> dict[str, int]:
    """Runs per action id over every worker's file."""
    seen: dict[str, int] = {}
    for path in directory.glob("runs-*.txt"):
        for line in path.read_text().split():
            seen[line] = seen.get(line, 0) + 1
    return seen


def read(directory: Path) -> dict:
    """Runs per action id over every worker's file: total, distinct, and the ids run more than once."""
    seen = read_all(directory)
    twice = sorted(a for a, n in seen.items() if n > 1)
    return {"runs": sum(seen.values()), "distinct": len(seen), "run_more_than_once": len(twice), "examples": twice[:5]}
