"""The scenarios of ``manage.py reliability`` (see bench/reliability.py for
what runs and what each number means). Each takes the run's ``Ctx``, starts
its own processes, and returns its counts; a ``ScenarioFailure`` means it
could not run, which is not a finding."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench import isolation
from bench.reliability import (
    TITLES,
    USER,
    V2_SCHEMA,
    Ctx,
    Options,
    ScenarioFailure,
    _code_counts,
    http_outcome,
    kill9_tree,
    post_execution,
    records,
    running,
    spawn_worker,
    states,
    submit,
    wait_calls,
    wait_started,
    wait_terminal,
    workflow_yaml,
)


def scenario_worker_kill9(ctx: Ctx) -> dict:
    """N executions whose std.http call the service holds for ``action_s``;
    kill -9 the worker (its whole process tree) while calls are in flight,
    start a new worker, and wait past the broker's re-delivery (``retry``) and
    the overdue sweep (one WORKER_LEASE). An action killed mid-call fails
    "Worker lost" with its reason (not run again behind the user's back); a
    job the dead worker had prefetched is queued again (WORKER_REDISPATCH_AFTER)
    and runs once. 4 pool workers, so what is counted is the kill's doing
    (``queue_backlog`` shows what a deeper queue does)."""
    o, say, name = ctx.opts, ctx.say, "worker_kill9"
    with running(ctx, name, pool_workers=4) as procs:
        say(
            f"[{name}] {o.worker_kill_n} executions, each call held {o.action_s:g} s; "
            "one worker process with 4 pool workers"
        )
        ids, codes = submit(ctx, procs.url, o.worker_kill_n, {"sleep": o.action_s}, name)
        in_flight = wait_calls(ctx, ids, max(2, o.worker_kill_n // 5), 60)
        killed_at = time.monotonic()
        n = kill9_tree(procs.worker.pid)
        calls_at_kill = sum(1 for i in ids if records(ctx).get(i))
        say(f"[{name}] kill -9 of the worker ({n} processes) with {calls_at_kill} calls made; starting a new worker")
        procs.worker = spawn_worker(procs, 2, workers=4)
        bound = o.q_retry + o.worker_redispatch_after + o.worker_lease + 20
        wait_terminal(ids, bound, say, name, min_s=o.q_retry + 5)
        out = http_outcome(ctx, ids)
        out.update(
            post_codes=dict(codes),
            calls_when_killed=calls_at_kill,
            bound_s=bound,
            waited_s=round(time.monotonic() - killed_at, 1),
            killed_processes=n,
            in_flight=in_flight,
        )
        return _code_counts(out, codes)


def scenario_queue_backlog(ctx: Ctx) -> dict:
    """No crash: queued work far longer than one worker lease for one pool
    worker (``backlog_n`` calls of ``action_s`` each). An action's running
    deadline starts when a worker claims it, so none that waits in the queue
    may fail although it never ran (the queue deadline, WORKER_QUEUE_TIMEOUT,
    is longer than the backlog)."""
    o, say, name = ctx.opts, ctx.say, "queue_backlog"
    with running(ctx, name, pool_workers=1) as procs:
        say(
            f"[{name}] {o.backlog_n} executions x {o.action_s:g} s on one pool worker "
            f"(~{o.backlog_n * o.action_s:.0f} s of work), WORKER_LEASE {o.worker_lease:g} s, "
            f"WORKER_QUEUE_TIMEOUT {o.worker_queue_timeout:g} s"
        )
        ids, codes = submit(ctx, procs.url, o.backlog_n, {"sleep": o.action_s}, name)
        wait_terminal(ids, o.backlog_n * o.action_s + o.worker_redispatch_after + o.worker_lease + 20, say, name)
        out = http_outcome(ctx, ids)
        out.update(post_codes=dict(codes), work_s=o.backlog_n * o.action_s)
        return _code_counts(out, codes)


def scenario_web_kill9(ctx: Ctx) -> dict:
    """POSTs from 4 threads; after a third of them, kill -9 of gunicorn (master
    and workers) and a restart. A request refused at connect (never sent) is
    tried again; a request cut off mid-way is not (its outcome is unknown, as
    for any client) and is looked up by its description afterwards."""
    from workflows.models import WorkflowExecution

    o, say, name = ctx.opts, ctx.say, "web_kill9"
    with running(ctx, name) as procs:
        n = o.web_posts
        answered = Counter()
        refused = [0]
        refused_posts: set[int] = set()
        no_answer: list[int] = []
        done = [0]
        lock = threading.Lock()
        kill_after = n // 3
        killed = threading.Event()
        local = threading.local()

        def one(i: int) -> None:
            s = getattr(local, "s", None) or requests.Session()
            local.s = s
            deadline = time.monotonic() + 120
            while True:
                try:
                    resp = post_execution(s, ctx, procs.url, "rel_http", {"sleep": 0}, f"{name}-{i}")
                except requests.ConnectionError as exc:
                    s = local.s = requests.Session()
                    if _refused(exc) and time.monotonic() < deadline:
                        with lock:
                            refused[0] += 1
                            refused_posts.add(i)
                        time.sleep(0.1)
                        continue
                    with lock:
                        no_answer.append(i)
                    break
                except requests.RequestException:
                    with lock:
                        no_answer.append(i)
                    break
                with lock:
                    answered[resp.status_code] += 1
                break
            with lock:
                done[0] += 1

        say(f"[{name}] {n} POST /v2/executions from 4 threads; kill -9 of the web process after ~{kill_after}")

        def killer():
            while True:
                with lock:
                    if done[0] >= kill_after:
                        break
                time.sleep(0.01)
            killed_n = kill9_tree(procs.web.pid)
            say(f"[{name}] killed the web process ({killed_n} processes) after {done[0]} answers; restarting it")
            killed.set()
            time.sleep(1.0)
            procs.start_web(log_name="web-restarted")
            say(f"[{name}] web process back on {procs.url}")

        k = threading.Thread(target=killer, daemon=True)
        k.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(n)))
        k.join(90)
        rows = list(
            WorkflowExecution.objects.filter(description__startswith=f"{name}-").values_list("id", "description")
        )
        per_desc = Counter(d for _, d in rows)
        ids = [i for i, _ in rows]
        wait_terminal(ids, o.worker_redispatch_after + o.worker_lease + 20, say, name)
        out = http_outcome(ctx, ids)
        unanswered_created = sum(1 for i in no_answer if per_desc.get(f"{name}-{i}"))
        out["duplicated"] += sum(1 for c in per_desc.values() if c > 1)
        five = sum(v for c, v in answered.items() if c >= 500)
        four = sum(v for c, v in answered.items() if 400 <= c < 500)
        out.update(
            posts=n,
            answers=dict(answered),
            no_answer=len(no_answer),
            no_answer_but_created=unanswered_created,
            connections_refused=refused[0],
            posts_refused_at_connect=len(refused_posts),
            five_xx=five,
            refused=four + len(refused_posts),
            killed=killed.is_set(),
        )
        return out


def _refused(exc: Exception) -> bool:
    """A connection that was never made: the request was not sent."""
    text = str(exc)
    return "Connection refused" in text or "Errno 111" in text


def scenario_worker_sigterm(ctx: Ctx) -> dict:
    """Three worker processes (2 pool workers each) under load; SIGTERM to one
    while calls are in flight. It should finish those, hand back what it
    prefetched, and exit within WORKER_STOP_TIMEOUT; the other two carry on."""
    o, name = ctx.opts, "worker_sigterm"
    with running(ctx, name) as procs:
        extra = [spawn_worker(procs, 2), spawn_worker(procs, 3)]
        try:
            for p in [procs.worker, *extra]:
                wait_started(p)
            return _sigterm_one(ctx, procs)
        finally:
            for p in extra:
                p.stop(o.worker_stop_timeout + 10)


def _sigterm_one(ctx: Ctx, procs) -> dict:
    """SIGTERM to the first worker once a quarter of the calls were made."""
    o, say, name = ctx.opts, ctx.say, "worker_sigterm"
    say(f"[{name}] {o.sigterm_n} executions, each call held {o.action_s:g} s, 3 worker processes")
    ids, codes = submit(ctx, procs.url, o.sigterm_n, {"sleep": o.action_s}, name)
    wait_calls(ctx, ids, max(2, o.sigterm_n // 4), 60)
    victim = procs.worker
    t0 = time.monotonic()
    victim.popen.send_signal(signal.SIGTERM)
    try:
        rc = victim.popen.wait(o.worker_stop_timeout + 20)
    except subprocess.TimeoutExpired:
        rc = None
    stop_s = round(time.monotonic() - t0, 1)
    say(f"[{name}] SIGTERM to worker pid {victim.pid}: exited {rc} after {stop_s} s")
    wait_terminal(ids, o.q_retry + o.worker_redispatch_after + o.worker_lease + 20, say, name, min_s=o.q_retry + 2)
    out = http_outcome(ctx, ids)
    out.update(post_codes=dict(codes), sigterm_exit_code=rc, sigterm_stop_s=stop_s)
    return _code_counts(out, codes)


def scenario_stop_all(ctx: Ctx) -> dict:
    """Load in flight, then SIGTERM to every process (the last one pauses the
    running workflows, ``paused by shutdown``), then one worker alone is
    started: it should resume exactly those and finish them."""
    from workflows.lifecycle import SHUTDOWN_TAG
    from workflows.models import WorkflowExecution

    o, say, name = ctx.opts, ctx.say, "stop_all"
    with running(ctx, name) as procs:
        say(f"[{name}] {o.stop_all_n} executions, each call held {o.action_s:g} s")
        ids, codes = submit(ctx, procs.url, o.stop_all_n, {"sleep": o.action_s}, name)
        wait_calls(ctx, ids, max(2, o.stop_all_n // 4), 60)
        codes_exit = procs.stop_all(timeout=o.worker_stop_timeout + 10)
        paused = WorkflowExecution.objects.filter(id__in=ids, state="PAUSED", state_info=SHUTDOWN_TAG).count()
        st = Counter(states(ids).values())
        say(f"[{name}] stopped all ({codes_exit}); {paused} paused by shutdown, states {dict(st)}; starting one worker")
        procs.worker = spawn_worker(procs, 2)
        wait_terminal(ids, o.q_retry + o.worker_redispatch_after + o.worker_lease + 20, say, name, min_s=o.q_retry + 2)
        out = http_outcome(ctx, ids)
        out.update(post_codes=dict(codes), exit_codes=codes_exit, paused_by_shutdown=paused, states_after_stop=dict(st))
        return _code_counts(out, codes)


def _complete_batch(
    url: str, token: str, jobs: list[tuple[str, str, object]], start_at: float, threads: int
) -> list[tuple[str, str, object, int, str]]:
    """In a separate process: PUT every completion, all threads released at
    ``start_at``. Returns (action id, state, output, status, answer's state)."""
    local = threading.local()

    def one(job):
        action_id, state, output = job
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        try:
            r = s.put(
                f"{url}/v2/action_executions/{action_id}",
                json={"state": state, "output": output},
                headers={"X-Auth-Token": token},
                timeout=120,
            )
            try:
                answer_state = r.json().get("state", "")
            except ValueError:
                answer_state = r.text[:200]
            return action_id, state, output, r.status_code, answer_state
        except requests.RequestException as exc:
            return action_id, state, output, 0, str(exc)[:200]

    time.sleep(max(0.0, start_at - time.time()))
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, jobs))


def scenario_completions(ctx: Ctx) -> dict:
    """``completion_actions`` std.async_noop actions, each completed 10 times
    at once from ``completion_procs`` processes: the same result (duplicates)
    and different ones (conflicts). Exactly one result per action must be
    stored and acknowledged; the others answer 200 (the same result) or 409;
    the next task must exist once."""
    import multiprocessing

    from django.db import connections

    from core.states import TERMINAL
    from workflows.models import ActionExecution, TaskExecution

    o, say, name = ctx.opts, ctx.say, "completions"
    with running(ctx, name) as procs:
        s = requests.Session()
        ex_ids = []
        for i in range(o.completion_actions):
            r = post_execution(s, ctx, procs.url, "rel_async", {}, f"{name}-{i}")
            if r.status_code != 201:
                raise ScenarioFailure(f"POST /v2/executions answered {r.status_code}: {r.text[:300]}")
            ex_ids.append(r.json()["id"])
        actions = dict(
            ActionExecution.objects.filter(workflow_execution_id__in=ex_ids, name="std.async_noop").values_list(
                "id", "workflow_execution_id"
            )
        )
        per = max(1, o.completions // max(1, len(actions)))
        rng = random.Random(7)
        jobs = []
        for a in actions:
            for k in range(per):
                if k % 2 == 0:
                    jobs.append((a, "SUCCESS", {"n": 1}))  # the duplicates
                elif k % 4 == 1:
                    jobs.append((a, "SUCCESS", {"n": 2}))  # conflicting output
                else:
                    jobs.append((a, "ERROR", "conflicting error"))  # conflicting state
        rng.shuffle(jobs)
        chunks = [jobs[i :: o.completion_procs] for i in range(o.completion_procs)]
        say(
            f"[{name}] {len(jobs)} completions of {len(actions)} actions from {o.completion_procs} processes "
            f"x 8 threads"
        )
        connections.close_all()  # no database connection crosses the fork
        start_at = time.time() + 1.0
        ctx_mp = multiprocessing.get_context("fork")
        with ctx_mp.Pool(o.completion_procs) as pool:
            parts = pool.starmap(_complete_batch, [(procs.url, ctx.token, c, start_at, 8) for c in chunks])
        answers = [a for p in parts for a in p]
        stored = {
            a: (st, out)
            for a, st, out in ActionExecution.objects.filter(id__in=list(actions)).values_list("id", "state", "output")
        }
        afters = Counter(
            TaskExecution.objects.filter(workflow_execution_id__in=ex_ids, name="after").values_list(
                "workflow_execution_id", flat=True
            )
        )
        codes = Counter(c for *_, c, _ in answers)
        wrong_ack = 0  # 200 for a result that is not the stored one: applied, then overwritten
        ok_by_action: dict[str, set] = {}
        for a, st, out, code, _ in answers:
            if code == 200:
                ok_by_action.setdefault(a, set()).add((st, json.dumps(out, sort_keys=True)))
                if stored[a][0] != st or stored[a][1] != {"result": out}:
                    wrong_ack += 1
        twice = sum(1 for v in ok_by_action.values() if len(v) > 1) + sum(1 for c in afters.values() if c > 1)
        never = sum(1 for a in actions if stored[a][0] not in TERMINAL)
        st_ex = states(ex_ids)
        stuck = sum(1 for i in ex_ids if st_ex.get(i) not in TERMINAL)
        return {
            "started": len(ex_ids),
            "finished": len(ex_ids) - stuck,
            "stuck": stuck,
            "lost": never,
            "duplicated": twice,
            "completions": len(answers),
            "answers": {str(k): v for k, v in sorted(codes.items())},
            "five_xx": sum(v for k, v in codes.items() if k >= 500),
            "refused": sum(v for k, v in codes.items() if 400 <= k < 500),
            "acknowledged_but_not_stored": wrong_ack,
            "next_task_rows": dict(Counter(afters.values())),
            "stored_states": dict(Counter(v[0] for v in stored.values())),
            "processes": o.completion_procs,
            "five_xx_sample": [a[4] for a in answers if a[3] >= 500 or a[3] == 0][:5],
        }


def scenario_fuzz_parser(ctx: Ctx) -> dict:
    """hypothesis: workflow-shaped documents (and broken YAML) into the
    parser, then every definition it accepts through the pure engine's start.
    The parser must answer valid or DefinitionError; anything else is a crash.
    Every tenth input also goes to POST /v2/workflows/validate on a real web
    process, where anything but a 200 with ``valid`` is a finding."""
    from bench import fuzz

    o, say, name = ctx.opts, ctx.say, "fuzz_parser"
    procs = ctx.procs(name)
    try:
        procs.start_web()
        say(f"[{name}] {o.parser_examples} generated definitions")
        out = fuzz.fuzz_parser(o.parser_examples, f"{procs.url}/v2/workflows/validate", ctx.headers(), say)
        out["over_http"] = fuzz.confirm_over_http(out, procs.url, ctx.headers(), say)
        out["five_xx"] += sum(1 for c in out["over_http"] if isinstance(c.get("status"), int) and c["status"] >= 500)
        return out
    finally:
        procs.stop_all(timeout=5)  # a request the fuzzer left hanging never ends on its own


def scenario_fuzz_api(ctx: Ctx) -> dict:
    """schemathesis against a real web process (no worker, so nothing a
    generated request starts can reach outside): /api/ from the schema the
    server serves at /api/schema, /v2 from api/openapi_v2.yaml; positive and
    negative cases per operation, authenticated with the API token."""
    from bench import fuzz

    o, say, name = ctx.opts, ctx.say, "fuzz_api"
    procs = ctx.procs(name)
    try:
        procs.start_web()
        say(f"[{name}] {o.api_examples} cases per operation and mode")
        return fuzz.fuzz_api(procs.url, ctx.headers(), V2_SCHEMA, o.api_examples, say)
    finally:
        procs.stop_all(timeout=5)


RUNNERS = {
    "worker_kill9": scenario_worker_kill9,
    "queue_backlog": scenario_queue_backlog,
    "web_kill9": scenario_web_kill9,
    "worker_sigterm": scenario_worker_sigterm,
    "stop_all": scenario_stop_all,
    "completions": scenario_completions,
    "fuzz_parser": scenario_fuzz_parser,
    "fuzz_api": scenario_fuzz_api,
}


# --- child ---------------------------------------------------------------------


def run_child(o: Options, result_path: Path, say: Callable[[str], None]) -> dict:
    """On the throwaway database: migrate, make the user and token, store the
    workflows, run the scenarios. Writes the JSON result to ``result_path``."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections
    from rest_framework.authtoken.models import Token

    from bench.driver import Outside
    from workflows import services

    db_name = isolation.check_connected(connection.settings_dict)
    scratch = result_path.parent
    result = {
        "ok": False,
        "database": {"vendor": connection.vendor, "name": db_name},
        "broker": o.broker,
        "options": o.as_json(),
        "scenarios": {},
        "failures": [],
    }
    outside = None
    try:
        say(f"reliability: migrating {connection.vendor} database {db_name}")
        call_command("migrate", interactive=False, verbosity=0)
        # Every permission, so the scenarios and the API fuzzing reach every door.
        user = get_user_model().objects.create_superuser(USER, f"{USER}@localhost", os.urandom(12).hex())
        token = Token.objects.create(user=user).key
        outside = Outside(scratch, 0.1)
        services.save_workflows(workflow_yaml(outside.url), update=True)
        connections.close_all()
        env = dict(os.environ)
        ctx = Ctx(o, scratch, env, outside, token, say)
        for name in o.scenarios:
            t0 = time.monotonic()
            say(f"[{name}] {TITLES[name]}")
            try:
                out = RUNNERS[name](ctx)
            except Exception as exc:  # reported, and the other scenarios still run
                say(f"[{name}] FAILED to run: {type(exc).__name__}: {exc}")
                result["failures"].append(f"{name}: {type(exc).__name__}: {exc}")
                out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            out["seconds"] = round(time.monotonic() - t0, 1)
            result["scenarios"][name] = out
            say(
                f"[{name}] done in {out['seconds']} s: "
                + ", ".join(
                    f"{k} {out[k]}"
                    for k in ("started", "finished", "stuck", "lost", "duplicated", "inputs", "five_xx", "refused")
                    if k in out
                )
            )
            connections.close_all()
        result["ok"] = not result["failures"]
    finally:
        if outside is not None:
            outside.stop()
        result_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
