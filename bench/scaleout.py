"""The scale-out curve of issue 12, for ``manage.py scaleout_bench``.

One throwaway database (bench.isolation; PostgreSQL when ``DATABASE_URL``
names one) is migrated once; then, per configuration of W web processes
(gunicorn ``--workers W``, 4 threads each) and N ``manage.py worker``
processes (``GUST_WORKERS`` pool workers each), the processes start (plus one
``manage.py run_tracker``, as ``bin/run``), ``clients`` threads run
``bench_work10`` (ten ``std.sleep seconds=0`` tasks one after the other:
ten worker jobs per execution) back to back for ``seconds``: ``POST
/v2/executions``, then ``GET`` every 5 ms until SUCCESS, as the REST
benchmark and Mistral's reference script poll (bench/rest.py). Then the
processes stop and the database is checked: every execution the clients
started is SUCCESS with ten SUCCESS actions, and every action ran exactly
once (bench/runcount.py, written in the worker processes), counted, not
assumed.

``hosts`` (bench/netns.py) puts the web, worker and tracker processes in
network namespaces of their own; the multi-host run also stops one worker
host mid-run (``kill_host``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import rest

WORKFLOW_NAME = "bench_work10"
TASKS = 10


def workflow_yaml(safe_rerun: bool = False) -> str:
    lines = ["---", "version: '2.0'", f"{WORKFLOW_NAME}:", "  tasks:"]
    for i in range(1, TASKS + 1):
        lines.append(f"    t{i}:")
        lines.append("      action: std.sleep seconds=0")
        if safe_rerun:
            lines.append("      safe-rerun: true")
        if i < TASKS:
            lines.append(f"      on-success: [t{i + 1}]")
    return "\n".join(lines) + "\n"


@dataclass
class Config:
    web: int
    workers: int
    pool: int = 2  # GUST_WORKERS of each worker process

    @property
    def label(self) -> str:
        return f"web {self.web} x worker {self.workers}"


@dataclass
class Load:
    """What the client threads saw."""

    latencies_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def drive(base: str, clients: int, seconds: float, say=print, stop_after=None, poller: str = "shared") -> Load:
    """``clients`` threads start ``bench_work10`` back to back for ``seconds``
    and wait for each to end. ``poller="shared"``: one thread GETs every
    pending execution once per round, 5 ms between rounds (the reference's
    concurrent scenario, bench/rest.py ``_conc_round``); ``"each"``: every
    client GETs its own every 5 ms (its sequential scenarios, times
    ``clients``). ``stop_after``: (seconds, callable) run once mid-run."""
    cl = rest.Client(base)
    load = Load()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    pending: dict[str, threading.Event] = {}
    states: dict[str, str] = {}
    running = threading.Event()
    running.set()

    def wait(ex_id: str) -> None:
        if poller == "each":
            rest.wait_state(cl, ex_id, timeout=300)
            return
        done = threading.Event()
        with lock:
            pending[ex_id] = done
        if not done.wait(300):
            raise rest.BenchFailure(f"timeout waiting for {ex_id}")
        if states.get(ex_id) != "SUCCESS":
            raise rest.BenchFailure(f"execution {ex_id} ended {states.get(ex_id)}")

    def shared_poller():
        while running.is_set():
            with lock:
                ids = list(pending)
            for ex_id in ids:
                try:
                    st, body = cl.get(f"/executions/{ex_id}")
                except OSError:
                    continue
                if st == 200 and body["state"] in ("SUCCESS", "ERROR", "CANCELLED"):
                    states[ex_id] = body["state"]
                    with lock:
                        pending.pop(ex_id).set()
            time.sleep(rest.POLL_S)

    def client():
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                ex = rest.start_exec(cl, WORKFLOW_NAME)
                t1 = time.perf_counter()
                with lock:
                    load.ids.append(ex["id"])
                wait(ex["id"])
            except Exception as exc:  # noqa: BLE001 -- counted and reported, the run goes on
                with lock:
                    load.errors.append(repr(exc)[:300])
                time.sleep(0.05)
                continue
            with lock:
                load.post_ms.append((t1 - t0) * 1000)
                load.latencies_ms.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    poll_thread = threading.Thread(target=shared_poller, daemon=True)
    t0 = time.perf_counter()
    if poller == "shared":
        poll_thread.start()
    for t in threads:
        t.start()
    if stop_after:
        timer = threading.Timer(stop_after[0], stop_after[1])
        timer.daemon = True
        timer.start()
    for t in threads:
        t.join(seconds + 400)
    load.seconds = time.perf_counter() - t0
    running.clear()
    return load


def summary(load: Load) -> dict:
    done = len(load.latencies_ms)
    out = {
        "executions_started": len(load.ids),
        "executions_seen_success": done,
        "client_errors": len(load.errors),
        "client_error_examples": load.errors[:3],
        "seconds": round(load.seconds, 2),
        "executions_per_s": round(done / load.seconds, 2) if load.seconds else None,
        "actions_per_s": round(done * TASKS / load.seconds, 1) if load.seconds else None,
    }
    if load.latencies_ms:
        out.update(rest.stats(load.latencies_ms))
        out["mean_ms"] = round(statistics.mean(load.latencies_ms), 2)
        out.update(rest.stats(load.post_ms, "post_"))
    return out


# --- in the child (Django set up, on the throwaway database) --------------------


def check(ids_file: Path, runs_dir: Path, redo_ok: bool = False) -> dict:
    """The executions the clients started, their actions, and each action's
    runs (bench/runcount.py): none lost, none run twice (``redo_ok``: an
    action of a ``safe-rerun`` task run again after its worker was lost is
    counted apart, not as a failure)."""
    from django.db.models import Count

    from bench import runcount
    from workflows.models import ActionExecution, WorkflowExecution

    ids = json.loads(ids_file.read_text())
    executions = WorkflowExecution.objects.filter(id__in=ids)
    states = dict(executions.order_by().values_list("state").annotate(n=Count("id")))
    actions = ActionExecution.objects.filter(workflow_execution_id__in=ids)
    action_states = dict(actions.order_by().values_list("state").annotate(n=Count("id")))
    success_ids = set(actions.filter(state="SUCCESS").values_list("id", flat=True))
    all_ids = set(actions.values_list("id", flat=True))
    runs = runcount.read_all(runs_dir)
    ran = set(runs)
    twice = sorted(a for a, n in runs.items() if n > 1)
    not_run = sorted(success_ids - ran)  # SUCCESS without a run: impossible unless a count was lost
    foreign = sorted(ran - all_ids)
    per_execution = dict(actions.order_by().values_list("workflow_execution_id").annotate(n=Count("id")))
    short = [e for e in ids if per_execution.get(e, 0) < TASKS]
    out = {
        "executions": len(ids),
        "execution_states": states,
        "action_rows": len(all_ids),
        "action_states": action_states,
        "actions_run": sum(runs.values()),
        "distinct_actions_run": len(ran),
        "run_more_than_once": len(twice),
        "run_more_than_once_examples": twice[:5],
        "success_without_a_run": len(not_run),
        "runs_of_unknown_actions": len(foreign),
        "executions_with_fewer_than_10_actions": len(short),
    }
    lost = len(ids) - states.get("SUCCESS", 0)
    out["lost"] = lost
    out["unfinished_actions"] = [
        {k: str(v) for k, v in row.items()}
        for row in actions.exclude(state="SUCCESS").values(
            "id", "state", "worker_started_at", "deadline", "updated_at", "created_at", "runtime_context"
        )[:5]
    ]
    out["ok"] = (
        lost == 0
        and not not_run
        and not foreign
        and not short
        and (redo_ok or not twice)
        and set(action_states) <= {"SUCCESS"}
    )
    if redo_ok and twice:
        out["rerun_safely"] = len(twice)
    return out


# --- in the parent (no database) ----------------------------------------------------


def configs_from(web: list[int], workers: list[int], pool: int) -> list[Config]:
    return [Config(w, n, pool) for n in workers for w in web]


def run_curve(
    configs: list[Config],
    clients: int,
    seconds: float,
    say,
    broker: str = "redis",
    redis_url: str | None = None,
    poller: str = "shared",
) -> dict:
    from bench import children, isolation

    db = isolation.create()
    say(f"scaleout_bench: {db.describe()}")
    base_env = {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    base_env.pop("GUST_SYNC_WORKER", None)
    results = []
    try:
        children.migrate(base_env)
        for i, cfg in enumerate(configs):
            res = run_config(db, base_env, cfg, clients, seconds, say, broker, redis_url, tag=f"c{i}", poller=poller)
            results.append(res)
            say(
                f"scaleout_bench: {cfg.label}: {res['load'].get('executions_per_s')} executions/s "
                f"({res['load'].get('actions_per_s')} worker actions/s), p95 {res['load'].get('p95_ms')} ms, "
                f"check ok={res['check']['ok']}"
            )
    finally:
        db.drop()
    return {"database": db.vendor, "broker": broker, "results": results}


def run_config(
    db,
    base_env: dict,
    cfg: Config,
    clients: int,
    seconds: float,
    say,
    broker: str,
    redis_url: str | None,
    tag: str,
    hosts=None,
    kill_at: float | None = None,
    extra_env: dict | None = None,
    poller: str = "shared",
) -> dict:
    """One configuration: start, load, stop, check. ``hosts`` (bench.netns.Hosts)
    places the processes; ``kill_at`` seconds into the load, the first worker
    host is stopped (its processes killed, its link down)."""
    from bench import children
    from bench.broker import server_cpu_s
    from bench.procs import GustProcesses, machine_busy_s, tree_cpu_s

    scratch = db.tmpdir / tag
    scratch.mkdir()
    runs_dir = scratch / "runs"
    runs_dir.mkdir()
    procs = GustProcesses(scratch, base_env, broker=broker, redis_url=redis_url)
    env = {
        **procs.env,
        "GUST_QUEUE": f"gust-scaleout-{os.getpid()}-{tag}",
        "GUST_LOG_LEVEL": "WARNING",
        "GUST_BENCH_RUNS_DIR": str(runs_dir),
        "GUST_WORKERS": str(cfg.pool),
        **(extra_env or {}),
    }
    env.pop("GUST_COUNT_QUERIES_DIR", None)
    web_host = hosts.web_url(procs.port) if hosts is not None else procs.url
    if hosts is not None:
        env = {**hosts.environ(env), "GUST_PUBLIC_URL": web_host}
    procs.env = env
    started = []
    killed = {}
    try:
        web = procs._spawn(
            "web",
            _prefix(hosts, "web", 0)
            + [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                hosts.bind(procs.port) if hosts else f"127.0.0.1:{procs.port}",
                "--workers",
                str(cfg.web),
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "--logger-class",
                "config.gunicorn_log.AccessLog",
                "--log-level",
                "warning",
            ],
            extra_env={"GUST_PUBLIC_URL": web_host},
        )
        started.append(web)
        workers = [
            procs._spawn(
                "worker", _prefix(hosts, "worker", k) + [sys.executable, "manage.py", "worker"], log_name=f"worker-{k}"
            )
            for k in range(cfg.workers)
        ]
        started += workers
        tracker = procs._spawn("tracker", _prefix(hosts, "tracker", 0) + [sys.executable, "manage.py", "run_tracker"])
        started.append(tracker)
        _wait_web(web_host, started)
        cl = rest.Client(f"{web_host}/v2")
        text = workflow_yaml(safe_rerun=kill_at is not None)
        st, body = cl.request("POST", "/workflows", text, ctype="text/plain")
        if st == 409:
            st, body = cl.request("PUT", "/workflows", text, ctype="text/plain")
        if st not in (200, 201):
            raise RuntimeError(f"cannot create {WORKFLOW_NAME}: {st} {body}")
        warm_up = rest.start_exec(cl, WORKFLOW_NAME)["id"]  # not timed, but checked with the others
        rest.wait_state(cl, warm_up, timeout=120)
        for p in started:
            if not p.alive():
                raise RuntimeError(f"the {p.role} process exited:\n{p.log_tail()}")
        cpu0 = {p.log.stem: tree_cpu_s(p.pid) for p in started}
        srv0, busy0, me0 = server_cpu_s(), machine_busy_s(), _self_cpu()
        stop_after = None
        if kill_at is not None:

            def kill():
                killed.update(hosts.kill_host("worker", 0, workers[0]))
                say(f"  stopped worker host 0 at {kill_at:.0f} s: {killed}")

            stop_after = (kill_at, kill)
        load = drive(f"{web_host}/v2", clients, seconds, say, stop_after, poller)
        cpu = {name: round(tree_cpu_s(p.pid) - cpu0[name], 2) for p in started for name in [p.log.stem] if p.alive()}
        servers = {k: round(v - srv0.get(k, 0.0), 2) for k, v in server_cpu_s().items()}
        busy, me = machine_busy_s() - busy0, _self_cpu() - me0
    finally:
        for p in started:
            p.stop(20)
    ids_file = scratch / "ids.json"
    ids_file.write_text(json.dumps([warm_up, *load.ids]))
    checked = children.run_child(
        "scaleout_bench",
        env if hosts is None else hosts.root_environ(env),
        "check",
        "--ids",
        str(ids_file),
        "--runs-dir",
        str(runs_dir),
        *(["--redo-ok"] if kill_at is not None else []),
    )
    done = len(load.latencies_ms) or 1
    out = {
        "web_processes": cfg.web,
        "worker_processes": cfg.workers,
        "pool_per_worker": cfg.pool,
        "clients": clients,
        "poller": poller,
        "load": summary(load),
        "check": checked,
        "cpu_s": {**cpu, "driver": round(me, 2), **servers, "machine_busy": round(busy, 2)},
        "cpu_ms_per_execution": {
            "web": round(1000 * cpu.get("web", 0) / done, 2),
            "workers": round(1000 * sum(v for k, v in cpu.items() if k.startswith("worker")) / done, 2),
            "postgres": round(1000 * servers.get("postgres", 0) / done, 2),
            "machine": round(1000 * busy / done, 2),
        },
        "busy_cores": round(busy / load.seconds, 2) if load.seconds else None,
    }
    if killed:
        out["killed"] = killed
    if not checked["ok"]:
        out["log_tails"] = {p.log.stem: p.log_tail(12) for p in started}
    return out


def _prefix(hosts, role: str, index: int) -> list[str]:
    return hosts.prefix(role, index) if hosts is not None else []


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _wait_web(url: str, procs, timeout: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"the {p.role} process exited ({p.popen.returncode}):\n{p.log_tail()}")
        try:
            if requests.get(f"{url}/versions", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the web process did not answer at {url} within {timeout:.0f} s")


def markdown(doc: dict) -> str:
    poll = (
        "one poller GETs every pending execution per round, 5 ms apart"
        if doc.get("poller", "shared") == "shared"
        else "each client GETs its execution every 5 ms"
    )
    lines = [
        f"Database {doc['database']}, broker {doc['broker']}, {doc['clients']} clients × "
        f"{doc['seconds']:g} s of `{WORKFLOW_NAME}` (10 worker actions each) per configuration ({poll}); "
        f"load average {doc['load_average_before']} before, {doc['load_average']} after.",
        "",
        "| web processes | worker processes (× pool) | executions/s | worker actions/s | p50 ms | p95 ms "
        "| POST p95 ms | CPU ms per execution: web / workers / PostgreSQL / whole machine | busy cores "
        "| executions | lost | run twice | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["results"]:
        ld, ck, c = r["load"], r["check"], r["cpu_ms_per_execution"]
        lines.append(
            f"| {r['web_processes']} | {r['worker_processes']} (× {r['pool_per_worker']}) "
            f"| {ld.get('executions_per_s')} | {ld.get('actions_per_s')} | {ld.get('p50_ms')} "
            f"| {ld.get('p95_ms')} | {ld.get('post_p95_ms')} | {c['web']} / {c['workers']} / {c['postgres']} "
            f"/ {c['machine']} | {r['busy_cores']} | {ck['executions']} | {ck['lost']} "
            f"| {ck['run_more_than_once']} | {ck['ok']} |"
        )
    return "\n".join(lines) + "\n"
