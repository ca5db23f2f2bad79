"""A whole Gust (web, worker, tracker) on a throwaway database of its own, for
tests and benchmarks that need two of them: a local one whose
``mistral.workflow`` task runs a workflow on the other, the remote
(tests/tracker/test_remote_mistral.py, ``manage.py remote_mistral_bench``).

Each instance takes a throwaway database from bench.isolation (a temporary
SQLite file, or ``gust_bench_<pid>_<label>`` on DATABASE_URL's PostgreSQL
server), migrates it with ``manage.py migrate`` and starts its processes with
bench.procs.GustProcesses; ``stop()`` stops them and drops the database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import requests

from bench import isolation
from bench.procs import ROOT, GustProcesses


class GustInstance:
    def __init__(
        self,
        label: str,
        environ: dict[str, str],
        query_interval: float = 0.2,
        pool_size: int = 4,
        extra_env: dict[str, str] | None = None,
    ):
        self.label = label
        self.db = isolation.create(environ, suffix=f"_{label}")
        self.procs = GustProcesses(self.db.tmpdir, self.db.env)
        self.procs.env["GUST_QUEUE"] = f"{self.procs.env['GUST_QUEUE']}-{label}"
        self.procs.env.update(extra_env or {})
        self.query_interval, self.pool_size = query_interval, pool_size
        self.url = self.procs.url
        self.session = requests.Session()

    def start(self) -> GustInstance:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=ROOT,
            env=self.procs.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            raise RuntimeError(f"migrate of the {self.label} Gust failed:\n{done.stdout}\n{done.stderr}")
        self.procs.start_web_and_worker()
        self.procs.start_tracker(self.query_interval, self.pool_size, batch_queries=False)
        return self

    def stop(self) -> None:
        try:
            self.procs.stop_all()
        finally:
            self.db.drop()

    def logs(self) -> str:
        procs = (self.procs.web, self.procs.worker, self.procs.tracker)
        return "\n".join(f"--- {self.label} {p.role}\n{p.log_tail(40)}" for p in procs if p is not None)

    # -- the /v2 API --

    def v2(self, method: str, path: str, expect: int | None = None, **kwargs):
        resp = self.session.request(method, f"{self.url}/v2{path}", timeout=30, **kwargs)
        if expect is not None and resp.status_code != expect:
            raise AssertionError(f"{method} {path} on the {self.label} Gust: HTTP {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def upload(self, text: str) -> None:
        self.v2("POST", "/workflows", expect=201, data=text.encode(), headers={"Content-Type": "text/plain"})

    def start_execution(self, workflow: str, inp: dict, params: dict | None = None) -> dict:
        return self.v2(
            "POST", "/executions", expect=201, json={"workflow_name": workflow, "input": inp, "params": params or {}}
        )

    def execution(self, execution_id: str) -> dict:
        return self.v2("GET", f"/executions/{execution_id}", expect=200)

    def wait_finished(self, execution_id: str, seconds: float = 60.0) -> dict:
        return wait_for(
            lambda: _finished(self.execution(execution_id)),
            seconds,
            f"execution {execution_id} on the {self.label} Gust to finish",
            self.procs.check_alive,
        )

    def action_executions(self, execution_id: str) -> list[dict]:
        tasks = self.v2("GET", f"/executions/{execution_id}/tasks", expect=200)["tasks"]
        out = []
        for task in tasks:
            out += self.v2("GET", f"/tasks/{task['id']}/action_executions", expect=200)["action_executions"]
        return out


def _finished(ex: dict) -> dict | None:
    return ex if ex["state"] in ("SUCCESS", "ERROR", "CANCELLED") else None


def wait_for(fn: Callable, seconds: float, what: str, check: Callable[[], None] | None = None):
    """Poll ``fn`` until it returns something truthy (a bound, not a speed assertion)."""
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.05)
