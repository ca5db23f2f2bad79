"""The REST benchmark of issue 12 ("Speed on the real HTTP path").

The scenarios and their polling are those of the project's reference script
``/work/shared/mistral-reference/rest_bench.py`` (copied here, not imported,
so the repository runs without the shared directory): workflows created with
``POST /v2/workflows``, executions started with ``POST /v2/executions`` and
watched with ``GET /v2/executions/<id>`` every 5 ms, one keep-alive
``http.client`` connection per thread. Added: ``get`` (GET of one finished
execution, the floor of every poll). The rejected-body probes of the async
scenario are left out: they measure behaviour, not speed.

No Django here: ``manage.py rest_bench`` starts the processes
(bench.procs.GustProcesses) and hands this module their base URL.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass

from bench import workflows

POLL_S = 0.005  # as the reference

WF_ASYNC = """---
version: '2.0'
bench_async1:
  output:
    result: <% task(t1).result %>
  tasks:
    t1:
      action: std.async_noop
"""


# Issue 10's: with-items over 1,000 items, 50 at a time, of std.noop and of
# std.async_noop (each completed with a PUT); a 3-level tree of sub-workflows
# with 100 leaves (10 x 10).
ITEMS = 1000
ITEMS_CONCURRENCY = 50


def items_yaml(name: str, action: str) -> str:
    return f"""---
version: '2.0'
{name}:
  input: [n]
  tasks:
    each:
      with-items: i in <% range(0, $.n) %>
      concurrency: {ITEMS_CONCURRENCY}
      action: {action}
"""


WF_TREE = """---
version: '2.0'
bench_tree:
  tasks:
    mid:
      with-items: i in <% range(0, 10) %>
      workflow: bench_tree_mid
bench_tree_mid:
  tasks:
    leaf:
      with-items: j in <% range(0, 10) %>
      workflow: bench_tree_leaf j=<% $.j %>
bench_tree_leaf:
  input: [j]
  output: {j: <% $.j %>}
  tasks:
    t: {action: std.noop}
"""

# The in-process benchmark's workflows (bench.workflows), plus one async action.
WORKFLOWS = {
    "bench_noop1": workflows.noop1_yaml(),
    "bench_seq50": workflows.seq_yaml(50),
    "bench_fan100": workflows.fan_yaml(100),
    "bench_async1": WF_ASYNC,
    "bench_items_noop": items_yaml("bench_items_noop", "std.noop"),
    "bench_items_async": items_yaml("bench_items_async", "std.async_noop"),
    "bench_tree": WF_TREE,
}
SCENARIOS = ["get", "noop1", "seq50", "fan100", "async", "conc", "items_noop", "items_async", "tree"]
DEFAULT_SCENARIOS = SCENARIOS[:6]  # issue 12's table; the issue-10 ones run when named

# Issue 12's targets (ms, SQLite, over real HTTP): scenario -> (result key, limit).
TARGETS = {
    "get": ("p50_ms", 1.5),
    "noop1": ("p50_ms", 3.0),
    "seq50": ("p50_ms", 25.0),
    "fan100": ("p50_ms", 40.0),
    "async": ("put_p50_ms", 3.0),
    "conc": ("wall_ms", 500.0),
}
# The issue's table, measured with the reference script before this work.
ISSUE_BEFORE = {"get": 4.8, "noop1": 16.8, "seq50": 45.0, "fan100": 70.0, "async": 21.6, "conc": 1200.0}


@dataclass
class Counts:
    get: int = 200
    noop1: int = 30  # the reference's --reps
    big: int = 5  # seq50, fan100 (reference: 3)
    async_: int = 20
    conc: int = 20
    conc_rounds: int = 3
    items: int = ITEMS

    @classmethod
    def quick(cls) -> Counts:
        return cls(get=20, noop1=3, big=1, async_=2, conc=4, conc_rounds=1, items=60)

    def as_json(self) -> dict:
        return asdict(self)


class Client:
    """Tiny keep-alive HTTP client, one connection per thread (the reference's)."""

    def __init__(self, base: str):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        return c

    def request(self, method: str, path: str, body=None, ctype: str = "application/json"):
        headers = {}
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            headers["Content-Type"] = ctype
        for attempt in range(3):
            c = self._conn()
            try:
                c.request(method, self.prefix + path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    self._local.conn = None
                try:
                    js = json.loads(data) if data else None
                except ValueError:
                    js = data.decode("utf-8", "replace")
                return r.status, js
            except (http.client.HTTPException, OSError):
                c.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def get(self, path: str):
        return self.request("GET", path)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def r2(x):
    return None if x is None else round(x, 2)


def stats(values: list[float], prefix: str = "") -> dict:
    return {
        f"{prefix}p50_ms": r2(statistics.median(values)),
        f"{prefix}p95_ms": r2(pct(values, 95)),
        f"{prefix}min_ms": r2(min(values)),
        f"{prefix}max_ms": r2(max(values)),
    }


class BenchFailure(Exception):
    pass


def ensure_workflows(cl: Client) -> None:
    for name, text in WORKFLOWS.items():
        st, body = cl.request("POST", "/workflows", text, ctype="text/plain")
        if st == 409:
            st, body = cl.request("PUT", "/workflows", text, ctype="text/plain")
        if st not in (200, 201):
            raise BenchFailure(f"cannot create workflow {name}: {st} {body}")


def start_exec(cl: Client, wf_name: str, wf_input: dict | None = None) -> dict:
    st, body = cl.request("POST", "/executions", {"workflow_name": wf_name, "input": json.dumps(wf_input or {})})
    if st != 201:
        raise BenchFailure(f"POST /executions -> {st} {body}")
    return body


def wait_state(cl: Client, ex_id: str, timeout: float = 120.0) -> tuple[dict, int]:
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        st, body = cl.get(f"/executions/{ex_id}")
        polls += 1
        if st == 200 and body["state"] == "SUCCESS":
            return body, polls
        if st == 200 and body["state"] in ("ERROR", "CANCELLED"):
            raise BenchFailure(f"execution {ex_id} ended {body['state']}: {body.get('state_info')}")
        if time.monotonic() > deadline:
            raise BenchFailure(f"timeout waiting for {ex_id} (last {body})")
        time.sleep(POLL_S)


def run_to_success(cl: Client, wf_name: str) -> tuple[float, float, int, str]:
    t0 = time.perf_counter()
    ex = start_exec(cl, wf_name)
    t_post = time.perf_counter()
    _, polls = wait_state(cl, ex["id"])
    t1 = time.perf_counter()
    return (t1 - t0) * 1000.0, (t_post - t0) * 1000.0, polls, ex["id"]


def scen_get(cl: Client, reps: int) -> dict:
    _, _, _, ex_id = run_to_success(cl, "bench_noop1")
    lat = []
    for _ in range(reps):
        t0 = time.perf_counter()
        st, body = cl.get(f"/executions/{ex_id}")
        lat.append((time.perf_counter() - t0) * 1000.0)
        if st != 200:
            raise BenchFailure(f"GET /executions/{ex_id} -> {st} {body}")
    return {"runs": reps, **stats(lat)}


def scen_run(cl: Client, wf_name: str, reps: int) -> dict:
    lat, post, polls = [], [], []
    for _ in range(reps):
        ms, pms, n, _ = run_to_success(cl, wf_name)
        lat.append(ms)
        post.append(pms)
        polls.append(n)
    return {"runs": reps, **stats(lat), **stats(post, "post_"), "polls_median": statistics.median(polls)}


def wait_action_running(cl: Client, ex_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    task_id = None
    while time.monotonic() < deadline:
        if task_id is None:
            st, body = cl.get(f"/tasks?workflow_execution_id={ex_id}")
            if st == 200 and body.get("tasks"):
                task_id = body["tasks"][0]["id"]
        if task_id is not None:
            st, body = cl.get(f"/action_executions?task_execution_id={task_id}")
            if st == 200 and body.get("action_executions"):
                ae = body["action_executions"][0]
                if ae["state"] == "RUNNING":
                    return ae
        time.sleep(POLL_S)
    raise BenchFailure(f"action execution of {ex_id} never RUNNING")


ASYNC_BODY = {"state": "SUCCESS", "output": {"result": 3}}


def scen_async(cl: Client, reps: int) -> dict:
    after_put, put_lat, total = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        ex = start_exec(cl, "bench_async1")
        ae = wait_action_running(cl, ex["id"])
        tp0 = time.perf_counter()
        st, body = cl.request("PUT", f"/action_executions/{ae['id']}", ASYNC_BODY)
        tp1 = time.perf_counter()
        if st != 200:
            raise BenchFailure(f"PUT action_execution -> {st} {body}")
        wait_state(cl, ex["id"])
        t2 = time.perf_counter()
        after_put.append((t2 - tp1) * 1000.0)
        put_lat.append((tp1 - tp0) * 1000.0)
        total.append((t2 - t0) * 1000.0)
    return {
        "runs": reps,
        **stats(put_lat, "put_"),
        **stats(after_put, "put_return_to_success_"),
        **stats(total, "start_to_success_"),
    }


def scen_items_noop(cl: Client, n: int) -> dict:
    t0 = time.perf_counter()
    ex = start_exec(cl, "bench_items_noop", {"n": n})
    t_post = time.perf_counter()
    wait_state(cl, ex["id"], timeout=600)
    t1 = time.perf_counter()
    return {
        "items": n,
        "concurrency": ITEMS_CONCURRENCY,
        "post_ms": r2((t_post - t0) * 1000.0),
        "wall_ms": r2((t1 - t0) * 1000.0),
        "items_per_s": round(n / (t1 - t0), 1),
    }


def scen_items_async(cl: Client, n: int) -> dict:
    """Each RUNNING item is completed with a PUT as soon as it is seen; the
    next ones start inside that PUT's transaction (at most 50 at once)."""
    t0 = time.perf_counter()
    ex = start_exec(cl, "bench_items_async", {"n": n})
    put_lat, done, most_running = [], 0, 0
    deadline = time.monotonic() + 600
    while done < n and time.monotonic() < deadline:
        st, body = cl.get(f"/action_executions?workflow_execution_id={ex['id']}&state=RUNNING&limit=1000")
        live = body.get("action_executions", []) if st == 200 else []
        most_running = max(most_running, len(live))
        for ae in live:
            tp = time.perf_counter()
            st, body = cl.request("PUT", f"/action_executions/{ae['id']}", ASYNC_BODY)
            put_lat.append((time.perf_counter() - tp) * 1000.0)
            if st != 200:
                raise BenchFailure(f"PUT action_execution -> {st} {body}")
            done += 1
    wait_state(cl, ex["id"], timeout=60)
    t1 = time.perf_counter()
    if most_running > ITEMS_CONCURRENCY:
        raise BenchFailure(f"{most_running} items ran at once, more than the concurrency {ITEMS_CONCURRENCY}")
    return {
        "items": n,
        "concurrency": ITEMS_CONCURRENCY,
        "most_running_seen": most_running,
        "wall_ms": r2((t1 - t0) * 1000.0),
        "completions_per_s": round(n / (t1 - t0), 1),
        **stats(put_lat, "put_"),
    }


def scen_tree(cl: Client, reps: int) -> dict:
    lat = []
    for _ in range(reps):
        ms, _, _, ex_id = run_to_success(cl, "bench_tree")
        lat.append(ms)
    st, body = cl.get(f"/executions?root_execution_id={ex_id}&limit=1000")
    if st != 200 or len(body["executions"]) != 110:
        raise BenchFailure(f"the tree has {len(body.get('executions', []))} sub-workflow executions, not 110")
    return {"runs": reps, "leaves": 100, "sub_workflows": 110, **stats(lat)}


def scen_conc(cl: Client, n_exec: int, rounds: int, n_tasks: int = 50) -> dict:
    walls, posted = [], []
    for _ in range(rounds):
        w, p = _conc_round(cl, n_exec, n_tasks)
        walls.append(w)
        posted.append(p)
    return {
        "executions": n_exec,
        "tasks_each": n_tasks,
        "rounds": rounds,
        "wall_ms_each": [r2(w) for w in walls],
        "wall_ms": r2(statistics.median(walls)),
        "all_posted_ms": r2(statistics.median(posted)),
        "tasks_per_s": round(n_exec * n_tasks / (statistics.median(walls) / 1000.0), 1),
    }


def _conc_round(cl: Client, n_exec: int, n_tasks: int) -> tuple[float, float]:
    """The reference's scenario 5: n_exec threads POST at once, then one poller
    GETs every pending execution per round, 5 ms apart. Returns (wall, posted) ms."""
    wf = f"bench_seq{n_tasks}"
    ids: list[str | None] = [None] * n_exec
    errs: list[str] = []
    t0 = time.perf_counter()

    def starter(i):
        try:
            ids[i] = start_exec(cl, wf)["id"]
        except Exception as e:  # noqa: BLE001 -- reported below
            errs.append(repr(e))

    threads = [threading.Thread(target=starter, args=(i,)) for i in range(n_exec)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_posted = time.perf_counter()
    if errs:
        raise BenchFailure(f"start errors: {errs[:3]}")
    pending = list(ids)
    done_at = {}
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for ex_id in list(pending):
            st, body = cl.get(f"/executions/{ex_id}")
            if st == 200 and body["state"] == "SUCCESS":
                pending.remove(ex_id)
                done_at[ex_id] = time.perf_counter() - t0
            elif st == 200 and body["state"] in ("ERROR", "CANCELLED"):
                raise BenchFailure(f"{ex_id} ended {body['state']}: {body.get('state_info')}")
        time.sleep(POLL_S)
    if pending:
        raise BenchFailure(f"{len(pending)} executions not finished")
    return max(done_at.values()) * 1000.0, (t_posted - t0) * 1000.0


def run(base: str, counts: Counts, scenarios: list[str], cpu=None, say=print) -> dict:
    """Run the scenarios against the API at ``base`` (ending in /v2). ``cpu()``
    returns the server processes' CPU seconds by role (bench.procs)."""
    cl = Client(base)
    st, _ = cl.get("/workflows?limit=1")
    if st != 200:
        raise BenchFailure(f"the API does not answer at {base} ({st})")
    ensure_workflows(cl)
    run_to_success(cl, "bench_noop1")  # warm-up, as the reference
    plan = {
        "get": lambda: scen_get(cl, counts.get),
        "noop1": lambda: scen_run(cl, "bench_noop1", counts.noop1),
        "seq50": lambda: scen_run(cl, "bench_seq50", counts.big),
        "fan100": lambda: scen_run(cl, "bench_fan100", counts.big),
        "async": lambda: scen_async(cl, counts.async_),
        "conc": lambda: scen_conc(cl, counts.conc, counts.conc_rounds),
        "items_noop": lambda: scen_items_noop(cl, counts.items),
        "items_async": lambda: scen_items_async(cl, counts.items),
        "tree": lambda: scen_tree(cl, counts.big),
    }
    results = {}
    for name in scenarios:
        say(f"rest_bench: {name} ...")
        c0, w0 = (cpu() if cpu else None), time.perf_counter()
        r = plan[name]()
        r["scenario_wall_s"] = round(time.perf_counter() - w0, 2)
        if cpu:
            c1 = cpu()
            r["server_cpu_s"] = {k: round(c1[k] - c0.get(k, 0.0), 2) for k in c1}
        results[name] = r
        say(f"rest_bench:   {json.dumps(r)}")
    return results


def judge(results: dict) -> dict:
    out = {}
    for name, (key, limit) in TARGETS.items():
        value = results.get(name, {}).get(key)
        out[name] = {"key": key, "value": value, "limit_ms": limit, "met": None if value is None else value <= limit}
    return out


def markdown(result: dict) -> str:
    rows = ["| scenario | measured | issue's before | target | |", "| --- | --- | --- | --- | --- |"]
    labels = {
        "get": "GET /v2/executions/<id> p50",
        "noop1": "noop1 (POST -> SUCCESS seen) p50",
        "seq50": "seq50 p50",
        "fan100": "fan100 + join p50",
        "async": "async completion PUT p50",
        "conc": f"{result['counts']['conc']} concurrent seq50, wall (median of rounds)",
    }
    for name, t in result["targets"].items():
        if t["value"] is None:
            continue
        verdict = "met" if t["met"] else f"missed by {t['value'] - t['limit_ms']:.1f} ms"
        rows.append(
            f"| {labels[name]} | {t['value']:.2f} ms | {ISSUE_BEFORE[name]:g} ms | ≤ {t['limit_ms']:g} ms | {verdict} |"
        )
    s = result["scenarios"]
    extra = []
    if "noop1" in s:
        extra.append(f"noop1 POST alone p50 {s['noop1']['post_p50_ms']} ms")
    if "async" in s:
        extra.append(f"async PUT return -> SUCCESS seen p50 {s['async']['put_return_to_success_p50_ms']} ms")
    return "\n".join(rows) + ("\n\n" + "; ".join(extra) + "\n" if extra else "\n")
