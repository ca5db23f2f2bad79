"""CPU time per API request, in one process: what the server spends, without
the HTTP client, the network or the other processes' scheduling. Under a
shared machine's load this moves much less than wall-clock latency, so it
is the number to compare between commits (bench/README.md, "HTTP path").

    python -m bench.request_cpu [--n 100]

Makes a throwaway database (bench.isolation), migrates it, and re-runs itself
on it: ``time.process_time()`` around N requests through Django's test client
(``GUST_API_AUTH=0``) for GET of one execution, POST of noop1 / seq50 /
fan100 (every task engine-local), a signed callback that completes an async
action and starts the next task, and ``PUT /v2/action_executions/<id>`` of
``bench_async1``. Prints one line per request kind and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CALLBACK_WF = """---
version: '2.0'
cb_two:
  tasks:
    job:
      action: std.async_noop
      on-success: [next]
    next:
      action: std.noop
"""


def measure(n: int) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["GUST_API_AUTH"] = "0"
    django.setup()
    from django.test import Client

    from bench import rest
    from workflows import callbacks
    from workflows.models import ActionExecution
    from workflows.startup import warm_up

    warm_up()  # the trace log is written as in production (stderr; the parent discards it)
    c = Client()
    for y in [CALLBACK_WF, *rest.WORKFLOWS.values()]:
        c.post("/v2/workflows", data=y, content_type="text/plain")

    def post(wf):
        r = c.post("/v2/executions", data=json.dumps({"workflow_name": wf}), content_type="application/json")
        assert r.status_code == 201, r.content
        return r.json()

    out = {}

    def cpu(label, fn, reps):
        for _ in range(5):
            fn()
        t = time.process_time()
        for _ in range(reps):
            fn()
        out[label] = round((time.process_time() - t) / reps * 1000, 3)
        print(f"{label:28s} {out[label]:8.3f} ms CPU", flush=True)

    ex = post("bench_noop1")
    cpu("get_execution", lambda: c.get(f"/v2/executions/{ex['id']}"), n * 3)
    cpu("post_noop1", lambda: post("bench_noop1"), n)
    cpu("post_seq50", lambda: post("bench_seq50"), max(n // 10, 5))
    cpu("post_fan100", lambda: post("bench_fan100"), max(n // 10, 5))
    tokens = []
    for _ in range(n + 5):
        a = ActionExecution.objects.get(workflow_execution_id=post("cb_two")["id"], name="std.async_noop")
        tokens.append(callbacks.make_token(a.id, a.attempt))
    it = iter(tokens)
    body = json.dumps({"state": "SUCCESS", "output": {"x": 1}})
    cpu("callback_put", lambda: c.put("/api/callbacks/" + next(it), data=body, content_type="application/json"), n)
    ids = [ActionExecution.objects.get(workflow_execution_id=post("bench_async1")["id"]).id for _ in range(n + 5)]
    it = iter(ids)
    body = json.dumps(rest.ASYNC_BODY)
    cpu(
        "async_put_v2",
        lambda: c.put(f"/v2/action_executions/{next(it)}", data=body, content_type="application/json"),
        n,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.n)))
        return
    sys.path.insert(0, str(ROOT))
    from bench import isolation

    db = isolation.create()
    try:
        env = {**os.environ, **db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        env.pop("GUST_SYNC_WORKER", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
        run = subprocess.run(
            [sys.executable, "-m", "bench.request_cpu", "--child", "--n", str(args.n)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:  # the trace log goes to stderr: shown only when something failed
            sys.exit(f"request_cpu failed:\n{run.stderr[-3000:]}")
        lines = run.stdout.strip().splitlines()
        print("\n".join(lines[:-1]))
        result = {
            "kind": "request_cpu",
            "n": args.n,
            "loadavg_at_end": list(os.getloadavg()),
            "cpu_ms": json.loads(lines[-1]),
        }
        print(json.dumps(result, indent=2))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
