"""``manage.py remote_mistral_bench``: a local Gust's ``mistral.workflow`` task
runs a workflow on a remote — real Mistral 23 (its API, engine and executor
in one process, bench/mistral_server.py, from its own virtualenv) and a
second Gust — tracked by callback (Mistral's params.notify webhook), by
polling GET /v2/executions/<id> at two intervals, and hybrid; the latency of
each side by side.

Latency is what a user of the local Gust sees: from its POST /v2/executions
to its GET /v2/executions/<id> saying SUCCESS (the driver asks every
``POLL_EVERY`` seconds), one execution at a time. The remote workflow is one
``std.noop`` task, so the figure is the round trip: start the remote
execution, run it, learn that it ended, fetch its output, finish the local
task and workflow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.gusts import GustInstance, wait_for
from bench.procs import ROOT, free_port, orphan_guard

POLL_EVERY = 0.01  # seconds between the driver's GETs of the local execution

# The remote's workflows, also those of tests/tracker/test_remote_mistral.py.
REMOTE_WORKFLOW = """
version: '2.0'
remote_quick:
  input: [x]
  output: {doubled: <% $.x * 2 %>}
  tasks:
    one:
      action: std.noop
remote_fail:
  input: [x: 0]
  tasks:
    boom:
      action: std.fail error_data="boom from the remote"
remote_wait:
  input: [x: 0]
  tasks:
    hold:
      action: std.async_noop
"""

# The local Gust's: one mistral.workflow task.
LOCAL_WORKFLOW = """
version: '2.0'
call:
  input: [url, tracking, wf: remote_quick, x: 21, query_interval: 0.2, grace: 60]
  output: {result: <% $.result %>}
  tasks:
    go:
      action: mistral.workflow
      input:
        url: <% $.url %>
        workflow_name: <% $.wf %>
        input: {x: <% $.x %>}
        tracking: <% $.tracking %>
        query_interval: <% $.query_interval %>
        grace: <% $.grace %>
        timeout: 10
      publish: {result: <% task().result %>}
"""


@dataclass(frozen=True)
class Mode:
    tracking: str
    query_interval: float = 1.0

    @property
    def name(self) -> str:
        return self.tracking if self.tracking != "poll" else f"poll-{self.query_interval:g}s"


# "direct": no local Gust, the remote workflow alone (the floor under every mode).
MODES = (Mode("direct"), Mode("callback"), Mode("poll", 1.0), Mode("poll", 0.2), Mode("hybrid"))


class MistralServer:
    """Mistral 23 from its virtualenv, on a free port, in a scratch directory."""

    def __init__(self, venv: Path, scratch: Path):
        self.python = venv / "bin" / "python"
        if not self.python.exists():
            raise RuntimeError(f"no Python at {self.python}: make the Mistral virtualenv first (bench/README.md)")
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v2"
        self.proc: subprocess.Popen | None = None
        self.log = scratch / "mistral-stdout.log"

    def start(self, timeout: float = 120.0) -> MistralServer:
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [str(self.python), str(ROOT / "bench" / "mistral_server.py"), str(self.scratch), str(self.port)],
                cwd=self.scratch,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=orphan_guard(),
            )

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"Mistral exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                return requests.get(f"{self.url}/workflows", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout, "Mistral's API to answer")
        return self

    def tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.log, self.scratch / "mistral.log"):
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return text

    def upload(self, text: str) -> None:
        resp = requests.post(
            f"{self.url}/workflows", data=text.encode(), headers={"Content-Type": "text/plain"}, timeout=30
        )
        if resp.status_code != 201:
            raise RuntimeError(f"Mistral refused the workflow: HTTP {resp.status_code} {resp.text}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


def direct_run(remote_url: str) -> float:
    """The baseline: the remote workflow started on the remote itself, the
    driver asking the remote every POLL_EVERY seconds until SUCCESS."""
    t0 = time.perf_counter()
    resp = requests.post(
        f"{remote_url}/executions", timeout=30, json={"workflow_name": "remote_quick", "input": json.dumps({"x": 21})}
    )
    resp.raise_for_status()
    ex_id = resp.json()["id"]
    while requests.get(f"{remote_url}/executions/{ex_id}", timeout=30).json()["state"] != "SUCCESS":
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"remote execution {ex_id} did not succeed within 120 s")
        time.sleep(POLL_EVERY)
    return time.perf_counter() - t0


def one_run(local: GustInstance, remote_url: str, mode: Mode) -> float:
    """Seconds from the local POST to its GET saying SUCCESS."""
    if mode.tracking == "direct":
        return direct_run(remote_url)
    t0 = time.perf_counter()
    ex = local.start_execution(
        "call", {"url": remote_url, "tracking": mode.tracking, "query_interval": mode.query_interval}
    )
    while True:
        got = local.execution(ex["id"])
        if got["state"] == "SUCCESS":
            break
        if got["state"] in ("ERROR", "CANCELLED"):
            raise RuntimeError(f"local execution {ex['id']} ended {got['state']}: {got['state_info']}")
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"local execution {ex['id']} still {got['state']} after 120 s")
        time.sleep(POLL_EVERY)
    elapsed = time.perf_counter() - t0
    if json.loads(got["output"]) != {"result": {"doubled": 42}}:
        raise RuntimeError(f"local execution {ex['id']} has output {got['output']}")
    return elapsed


def checks(local: GustInstance, remote_url: str) -> dict[str, str]:
    """A remote failure fails the local task with its state_info, and
    cancelling the local workflow cancels the remote execution, by callback
    and by polling: "ok" or what went wrong."""
    out = {}
    for tracking in ("callback", "poll"):
        try:
            ex = local.start_execution(
                "call", {"url": remote_url, "tracking": tracking, "query_interval": 0.2, "wf": "remote_fail"}
            )
            ended = local.wait_finished(ex["id"])
            (task,) = local.v2("GET", f"/executions/{ex['id']}/tasks", expect=200)["tasks"]
            ok = ended["state"] == "ERROR" and "Remote workflow execution " in (task["state_info"] or "")
            out[f"failure-{tracking}"] = "ok" if ok else f"{ended['state']}: {task['state_info']}"
        except (AssertionError, RuntimeError, requests.RequestException) as exc:
            out[f"failure-{tracking}"] = f"failed: {exc}"
        try:
            out[f"cancel-{tracking}"] = _cancel_check(local, remote_url, tracking)
        except (AssertionError, RuntimeError, requests.RequestException) as exc:
            out[f"cancel-{tracking}"] = f"failed: {exc}"
    return out


def _cancel_check(local: GustInstance, remote_url: str, tracking: str) -> str:
    ex = local.start_execution(
        "call", {"url": remote_url, "tracking": tracking, "query_interval": 0.2, "wf": "remote_wait"}
    )
    before = requests.get(f"{remote_url}/executions", timeout=30).json()["executions"]

    def started():
        (action,) = local.action_executions(ex["id"]) or [None]
        listed = requests.get(f"{remote_url}/executions", timeout=30).json()["executions"]
        mine = [e for e in listed if action and action["id"] in (e.get("description") or "")]
        return mine[0] if mine and mine[0]["state"] == "RUNNING" else None

    remote_ex = wait_for(started, 60, f"the remote execution to start ({len(before)} listed before)")
    local.v2("PUT", f"/executions/{ex['id']}", expect=200, json={"state": "CANCELLED"})
    local.wait_finished(ex["id"])

    def remote_state():
        got = requests.get(f"{remote_url}/executions/{remote_ex['id']}", timeout=30).json()
        return got if got["state"] != "RUNNING" else None

    got = wait_for(remote_state, 60, "the remote execution to be cancelled")
    return "ok" if got["state"] == "CANCELLED" else f"remote {got['state']}: {got.get('state_info')}"


def summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)

    def pct(p):
        return round(ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))], 1)

    return {
        "n": len(ms),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "max_ms": round(ms[-1], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def run(n: int, venv: Path, scratch: Path, say: Callable[[str], None], remotes: tuple[str, ...]) -> dict:
    environ = dict(os.environ)
    environ.pop("GUST_BENCH_DB", None)
    # The tracker wakes at least every QUERY_INTERVAL to claim new rows: at 0.2 s a per-action
    # query_interval of 0.2 s is honoured from the first query on.
    local = GustInstance("local", environ, query_interval=0.2)
    servers: dict[str, str] = {}
    stoppers: list[Callable[[], None]] = [local.stop]
    result: dict = {"n": n, "modes": [m.name for m in MODES], "remotes": {}, "started": time.time()}
    try:
        say(f"starting the local Gust ({local.db.describe()})")
        local.start()
        local.upload(LOCAL_WORKFLOW)
        if "mistral" in remotes:
            say(f"starting Mistral 23 from {venv}")
            mistral = MistralServer(venv, scratch / "mistral")
            stoppers.append(mistral.stop)
            mistral.start()
            mistral.upload(REMOTE_WORKFLOW)
            servers["mistral"] = mistral.url
            result["mistral_version"] = _mistral_version(venv)
        if "gust" in remotes:
            say("starting the remote Gust")
            other = GustInstance("remote", environ)
            stoppers.append(other.stop)
            other.start()
            other.upload(REMOTE_WORKFLOW)
            servers["gust"] = f"{other.url}/v2"
        for remote, url in servers.items():
            result.setdefault("checks", {})[remote] = found = checks(local, url)
            say(f"{remote:8} checks: " + ", ".join(f"{k} {v}" for k, v in found.items()))
        for remote, url in servers.items():
            result["remotes"][remote] = {}
            for mode in MODES:
                one_run(local, url, mode)  # warm-up: connections, caches
                times = [one_run(local, url, mode) for _ in range(n)]
                result["remotes"][remote][mode.name] = summary(times)
                s = result["remotes"][remote][mode.name]
                say(f"{remote:8} {mode.name:10} p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms  (n={n})")
        result["database"] = local.db.vendor
        return result
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                say(f"stopping failed: {exc}")


def _mistral_version(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('mistral'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() or "unknown"


def markdown(result: dict) -> str:
    remotes = list(result["remotes"])
    lines = [
        f"# mistral.workflow: remote latency by tracking mode ({result['database']}, n={result['n']} each)",
        "",
        "From the local Gust's POST /v2/executions to its GET saying SUCCESS; the remote workflow is one "
        "std.noop task; `direct` is that workflow started on the remote itself, without the local Gust. "
        "Command: `manage.py remote_mistral_bench`.",
        "",
        "| mode | " + " | ".join(f"{r} p50 ms | {r} p95 ms" for r in remotes) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in remotes) + " |",
    ]
    for mode in result["modes"]:
        cells = []
        for r in remotes:
            s = result["remotes"][r][mode]
            cells.append(f"{s['p50_ms']:.1f} | {s['p95_ms']:.1f}")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    for r, found in result.get("checks", {}).items():
        lines += ["", f"{r}: " + ", ".join(f"{k} {v}" for k, v in found.items())]
    if result.get("mistral_version"):
        lines += [
            "",
            f"Mistral {result['mistral_version']} (API, engine and executor in one process, bench/mistral_server.py).",
        ]
    return "\n".join(lines) + "\n"
