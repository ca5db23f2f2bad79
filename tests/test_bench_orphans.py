"""A benchmark's children do not outlive it: killed with SIGKILL (as a CI
timeout or ``kill -9`` would), the processes it started get SIGTERM from
the kernel and stop, instead of running on against their databases."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PARENT = """
import subprocess, sys, time
from bench.procs import orphan_guard
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True,
                         preexec_fn=orphan_guard() if sys.argv[1] == "guarded" else None)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def _child_after_parent_killed(mode: str, wait_s: float) -> tuple[int, bool]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + wait_s
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, _alive(child)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_benchmark_child_stops_when_the_benchmark_is_killed():
    child, alive = _child_after_parent_killed("guarded", 10)
    assert not alive
    child, alive = _child_after_parent_killed("bare", 0.5)  # the control: without the guard it would run on
    try:
        assert alive
    finally:
        os.kill(child, signal.SIGKILL)
