"""The two fuzzing scenarios of ``manage.py reliability``.

- ``fuzz_parser``: hypothesis generates workflow-shaped documents (every
  keyword of the schema, transitions, joins, expressions good and broken,
  wrong types everywhere), YAML with aliases and broken syntax, and plain
  text. ``lang.parse_definition`` must return specs or raise DefinitionError;
  each accepted workflow then goes through the pure engine's Start, which
  must answer or raise engine.Conflict. Any other exception is a crash.
- ``fuzz_api``: schemathesis cases (positive and negative) for every
  operation of the server's own /api/ schema and of api/openapi_v2.yaml,
  sent to a real web process with the API token; every 5xx is kept with the
  request that produced it, and each operation is also called once without a
  token to see whether it asks for a login.

Failures are recorded and the run goes on (no shrinking), so the numbers
cover every generated input.
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.reporting import with_reporter

FUZZ_SETTINGS = dict(
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
    derandomize=False,
    print_blob=False,
)

# --- definitions -------------------------------------------------------------------

_EXPRESSIONS = [
    "<% $.x %>",
    "<% task(t1).result %>",
    "<% task().result %>",
    "<% execution().input %>",
    "<% env() %>",
    "{{ _.x }}",
    "<% $.x + %>",
    "{{ }",
    "<% 1 / 0 %>",
    "<% $.missing.deep %>",
    "{{ 1/0 }}",
    "<% len($.x) %>",
    "<% %>",
    "{% for %}",
    "text <% $.x %> and {{ _.y }}",
    "<% $.x * 100000000 %>",
    "<% range(0, 10) %>",
    "{{ range(10) | list }}",
    "<% str($) %>",
    "<% task(nope).result %>",
]
_NAMES = st.sampled_from(["t1", "t2", "t3", "fail", "succeed", "pause", "noop", "wf", "x", "a b", ""]) | st.text(
    alphabet="abcxyz_-1", min_size=1, max_size=5
)
_EXPR = st.sampled_from(_EXPRESSIONS)
_SCALAR = (
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12) | _EXPR
)
_JSONISH = st.recursive(
    _SCALAR,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5) | _EXPR, c, max_size=3),
    max_leaves=8,
)


def _actions() -> list[str]:
    from core import actions

    return [
        *actions.every(),
        "no.such_action",
        "std.echo output=<% $.x %>",
        "std.noop x=1",
        "std.http url=http://127.0.0.1:9/x",
        "std.fail error_data=boom",
        "std.echo output=",
    ]


_TRANSITION = (
    _NAMES | st.lists(_NAMES | st.dictionaries(_NAMES, _EXPR | _SCALAR, min_size=1, max_size=1), max_size=3) | _JSONISH
)


def _task():
    return st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(_actions()) | _SCALAR,
            "input": st.dictionaries(
                st.sampled_from(["output", "url", "seconds", "x", "error_data", "method"]), _JSONISH, max_size=3
            )
            | _JSONISH,
            "publish": st.dictionaries(_NAMES, _EXPR | _JSONISH, max_size=2) | _JSONISH,
            "publish-on-error": _JSONISH,
            "on-success": _TRANSITION,
            "on-error": _TRANSITION,
            "on-complete": _TRANSITION,
            "join": st.sampled_from(["all", "one", 0, 1, 2, -1, "x", 10**9]) | _JSONISH,
            "keep-result": _SCALAR,
            "description": _SCALAR,
            "tags": _JSONISH,
            "retry": _JSONISH,
            "with-items": _JSONISH,
            "bogus": _JSONISH,
        },
    )


def _workflow():
    return st.fixed_dictionaries(
        {"tasks": st.dictionaries(_NAMES, _task(), max_size=4) | _JSONISH},
        optional={
            "type": st.sampled_from(["direct", "reverse", "x"]) | _SCALAR,
            "input": st.lists(_NAMES | st.dictionaries(_NAMES, _JSONISH, min_size=1, max_size=2), max_size=3)
            | _JSONISH,
            "output": _JSONISH,
            "output-on-error": _JSONISH,
            "vars": st.dictionaries(_NAMES, _JSONISH, max_size=2) | _JSONISH,
            "task-defaults": _JSONISH,
            "tags": _JSONISH,
            "description": _SCALAR,
        },
    )


_VERSION = st.sampled_from(["2.0", 2, 2.0, "1.0", None, "2"])
# Hand-written YAML that generated mappings cannot produce: aliases (one
# refers to itself), tags, anchors across workflows, tabs, a huge number.
_SNIPPETS = [
    "version: '2.0'\nwf:\n  tasks:\n    t1: &a\n      action: std.noop\n      on-success: [t2]\n    t2: *a\n",
    "version: '2.0'\nwf: &w\n  tasks: {t1: {action: std.noop}}\nwf2: *w\n",
    "version: '2.0'\nwf:\n  tasks: &t [*t]\n",
    "version: '2.0'\nwf:\n  vars: &v {a: *v}\n  tasks: {t1: {action: std.noop}}\n",
    "version: '2.0'\nwf:\n  tasks:\n    t1: !!python/object:os.system {}\n",
    "version: '2.0'\nwf:\n\ttasks:\n",
    "version: '2.0'\nwf:\n  tasks: {t1: {action: std.noop, join: 1e400}}\n",
    "version: !!binary aGVsbG8=\n",
    "? [a, b]\n: c\n",
    "version: '2.0'\n"
    + "wf:\n  tasks:\n"
    + "".join(f"    t{i}: {{action: std.noop, on-success: [t{i + 1}]}}\n" for i in range(300))
    + "    t300: {action: std.noop}\n",
]


def _dump(doc) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return json.dumps(doc, default=str)


_LOCAL_ACTIONS = [
    "std.noop",
    "std.echo output=<% $.x %>",
    "std.echo output={{ _.x }}",
    "std.fail",
    "std.echo output=<% task().result %>",
    "std.async_noop",
    "std.http url=http://127.0.0.1:9/",
    "std.echo output=<% $.x + 1 %>",
    "std.echo output=<% len($.x) %>",
]


@st.composite
def valid_workflows(draw) -> dict:
    """Workflows that pass validation more often than not: known actions,
    transitions only to later tasks (a cycle of local tasks never ends, see
    the snippets), joins, guards, publish and input defaults."""
    n = draw(st.integers(1, 6))
    names = [f"t{i}" for i in range(n)]
    tasks = {}
    for i, name in enumerate(names):
        later = names[i + 1 :]
        task = {"action": draw(st.sampled_from(_LOCAL_ACTIONS))}
        for key in ("on-success", "on-error", "on-complete"):
            if later and draw(st.booleans()):
                targets = draw(st.lists(st.sampled_from(later), min_size=1, max_size=2, unique=True))
                task[key] = [t if draw(st.booleans()) else {t: draw(_EXPR)} for t in targets]
        if draw(st.booleans()):
            task["publish"] = {draw(st.sampled_from(["x", "y", "r"])): draw(_EXPR | _SCALAR)}
        if i and draw(st.integers(0, 3)) == 0:
            task["join"] = draw(st.sampled_from(["all", "one", 1, 2]))
        if draw(st.integers(0, 4)) == 0:
            task["keep-result"] = draw(st.booleans())
        tasks[name] = task
    wf = {"tasks": tasks}
    if draw(st.booleans()):
        wf["input"] = [{"x": draw(_JSONISH)}]
    if draw(st.booleans()):
        wf["output"] = {"out": draw(_EXPR | _SCALAR)}
    if draw(st.booleans()):
        wf["vars"] = {"y": draw(_JSONISH)}
    return wf


@st.composite
def definitions(draw) -> str:
    kind = draw(st.integers(0, 11))
    if kind >= 10:  # mostly valid, so the engine gets to run them
        text = _dump({"version": "2.0", "wf": draw(valid_workflows())})
    elif kind <= 4:  # the long form, one or more workflows
        doc = {"version": draw(_VERSION)}
        doc.update(draw(st.dictionaries(_NAMES | st.integers(0, 3), _workflow(), max_size=3)))
        text = _dump(doc)
    elif kind == 5:  # the short form
        doc = {"version": draw(_VERSION), "name": draw(_NAMES | _SCALAR), **draw(_workflow())}
        text = _dump(doc)
    elif kind == 6:
        text = draw(st.sampled_from(_SNIPPETS))
    elif kind == 7:
        text = draw(st.text(max_size=200))
    else:  # a generated document, then damaged: a cut, or characters put in
        doc = {"version": "2.0", **draw(st.dictionaries(_NAMES, _workflow(), min_size=1, max_size=2))}
        text = _dump(doc)
        at = draw(st.integers(0, len(text)))
        if kind == 8:
            text = text[:at]
        else:
            text = (
                text[:at]
                + draw(st.sampled_from([":", "- ", "\t", "'", "{", "&x ", "*x", "\n  ", "%", "\x00"]))
                + text[at:]
            )
    return text


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in tb if "/workflows/" in f.filename] or tb
    f = ours[-1] if ours else None
    return f"{Path(f.filename).name}:{f.lineno} ({f.name})" if f else "?"


HTTP_CONFIRM_S = 10
INPUT_SECONDS = 3  # an input that takes longer is a finding, and is cut off
MEMORY_BYTES = 2 * 1024**3  # address space of the fuzzing process: a blow-up is a MemoryError, not the OOM killer


class InputTimeout(Exception):
    pass


# The alarm fires again every half second after the first: an exception raised
# where Python swallows it (a gc callback that ran inside the looping engine)
# would otherwise let the input run forever.
_armed = [False]


def _arm() -> None:
    import signal

    _armed[0] = True
    signal.setitimer(signal.ITIMER_REAL, INPUT_SECONDS, 0.5)


def _disarm() -> None:
    import signal

    _armed[0] = False
    signal.setitimer(signal.ITIMER_REAL, 0)


def fuzz_parser(examples: int, validate_url: str | None, headers: dict, say: Callable[[str], None]) -> dict:
    """Runs in a forked process with a memory cap, so one input that exhausts
    memory or time is recorded instead of taking the whole run down."""
    import multiprocessing

    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fuzz_parser_child, args=(examples, validate_url, headers, queue))
    proc.start()
    result = None
    while result is None:
        try:
            kind, payload = queue.get(timeout=1.0)
        except Exception:  # queue.Empty
            if not proc.is_alive():
                break
            continue
        if kind == "say":
            say(payload)
        else:
            result = payload
    proc.join(30)
    if result is None:
        raise RuntimeError(f"the fuzzing process died (exit {proc.exitcode}) without a result")
    if "error" in result:
        raise RuntimeError(f"the fuzzing process failed: {result['error']}\n{result.get('traceback', '')}")
    return result


def _fuzz_parser_child(examples, validate_url, headers, queue) -> None:
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))

    def alarm(signum, frame):
        if _armed[0]:
            raise InputTimeout(f"more than {INPUT_SECONDS} s")

    signal.signal(signal.SIGALRM, alarm)
    try:
        out = _fuzz_parser(examples, validate_url, headers, lambda m: queue.put(("say", m)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    queue.put(("result", out))


def _fuzz_parser(examples: int, validate_url: str | None, headers: dict, say: Callable[[str], None]) -> dict:
    from core import engine
    from core.lang import spec as lang

    counts = Counter()
    crashes: dict[str, dict] = {}
    http_codes = Counter()
    http_findings: list[dict] = []
    slowest = [0.0, ""]
    seen: set[str] = set()
    session = requests.Session()
    every = max(1, examples // 5)

    def crash(stage: str, exc: BaseException, text: str) -> None:
        key = f"{stage}: {type(exc).__name__} at {_where(exc)}"
        c = crashes.setdefault(key, {"count": 0, "message": str(exc)[:300], "input": text[:400], "full_input": text})
        c["count"] += 1

    @settings(max_examples=examples, **FUZZ_SETTINGS)
    @given(definitions())
    def one(text: str) -> None:
        try:
            check(text)
        except InputTimeout as exc:  # it fired between two of check's own guards
            counts["crashes"] += 1
            crash("timeout", exc, text)
        finally:
            _disarm()

    def check(text: str) -> None:
        if text in seen:  # hypothesis draws the hand-written snippets again and again
            return
        seen.add(text)
        counts["inputs"] += 1
        n = counts["inputs"]
        t0 = time.perf_counter()
        _arm()
        try:
            specs = lang.parse_definition(text)
        except lang.DefinitionError:
            counts["invalid"] += 1
            specs = {}
        except BaseException as exc:  # noqa: BLE001 - any other exception is the finding
            counts["crashes"] += 1
            crash("parse_definition", exc, text)
            specs = {}
        else:
            counts["valid"] += 1
        finally:
            _disarm()
        took = time.perf_counter() - t0
        if took > slowest[0]:
            slowest[:] = [took, text[:200]]
        for name, spec in specs.items():
            _arm()
            try:
                values, errors = engine.check_input(spec, {})
                if errors:
                    continue
                snap = engine.Snapshot(
                    id="fuzz", workflow_name=name, state="IDLE", input=values, params={"env": {}, "namespace": ""}
                )
                engine.handle(spec, snap, engine.Start())
                counts["engine_started"] += 1
            except engine.Conflict:
                pass
            except BaseException as exc:  # noqa: BLE001 - MemoryError and InputTimeout included
                counts["crashes"] += 1
                crash("engine.handle(Start)", exc, text)
            finally:
                _disarm()
        if validate_url and n % 10 == 0:
            try:
                r = session.post(
                    validate_url,
                    data=text.encode("utf-8", "replace"),
                    headers={**headers, "Content-Type": "text/plain"},
                    timeout=60,
                )
                http_codes[r.status_code] += 1
                if r.status_code >= 500 or (r.status_code == 200 and "valid" not in r.json()):
                    http_findings.append({"status": r.status_code, "input": text[:300], "answer": r.text[:300]})
            except (requests.RequestException, ValueError) as exc:
                http_codes["no answer"] += 1
                http_findings.append({"status": None, "input": text[:300], "answer": str(exc)[:300]})
        if n % every == 0:
            say(
                f"[fuzz_parser]   {n}/{examples} inputs: {counts['valid']} valid, {counts['invalid']} invalid, "
                f"{counts['crashes']} crashes"
            )

    one()
    five = sum(v for k, v in http_codes.items() if isinstance(k, int) and k >= 500)
    return {
        "inputs": counts["inputs"],
        "valid": counts["valid"],
        "invalid": counts["invalid"],
        "engine_started": counts["engine_started"],
        "crashes": counts["crashes"],
        "crash_kinds": crashes,
        "slowest_parse_s": round(slowest[0], 3),
        "slowest_input": slowest[1],
        "http_validate": {str(k): v for k, v in http_codes.items()},
        "http_findings": http_findings[:10],
        "five_xx": five,
        "refused": sum(v for k, v in http_codes.items() if isinstance(k, int) and 400 <= k < 500),
    }


def confirm_over_http(out: dict, base: str, headers: dict, say: Callable[[str], None]) -> list[dict]:
    """Each kind of crash once through the real web process: a parser crash
    to POST /v2/workflows/validate; an engine crash stored with POST
    /v2/workflows (its own namespace) and started with POST /v2/executions,
    which runs the first engine step inside the request."""
    from core.lang import spec as lang

    s = requests.Session()
    h = {**headers, "Content-Type": "text/plain"}
    confirmed = []
    # Hangs last: a request that never ends keeps its transaction (on SQLite,
    # the write lock), which would make every later one time out too.
    kinds = sorted((out.get("crash_kinds") or {}).items(), key=lambda kv: "InputTimeout" in kv[0])
    for i, (kind, c) in enumerate(kinds):
        text = c["full_input"]
        req = ""
        try:
            if kind.startswith("parse_definition"):
                req = "POST /v2/workflows/validate"
                r = s.post(
                    f"{base}/v2/workflows/validate",
                    data=text.encode("utf-8", "surrogatepass"),
                    headers=h,
                    timeout=HTTP_CONFIRM_S,
                )
            else:
                ns = f"fuzz{i}"
                names = list(lang.parse_definition(text))
                req = f"POST /v2/workflows?namespace={ns}"
                r = s.post(
                    f"{base}/v2/workflows",
                    params={"namespace": ns},
                    data=text.encode(),
                    headers=h,
                    timeout=HTTP_CONFIRM_S,
                )
                if r.status_code == 201:
                    req = f"POST /v2/executions {{workflow_name: {names[0]}, workflow_namespace: {ns}}}"
                    r = s.post(
                        f"{base}/v2/executions",
                        json={"workflow_name": names[0], "workflow_namespace": ns},
                        headers=headers,
                        timeout=HTTP_CONFIRM_S,
                    )
            confirmed.append({"kind": kind, "request": req, "status": r.status_code, "answer": r.text[:300]})
        except requests.RequestException as exc:
            confirmed.append(
                {
                    "kind": kind,
                    "request": req,
                    "status": f"no answer within {HTTP_CONFIRM_S} s",
                    "answer": f"{type(exc).__name__}",
                }
            )
        say(f"[fuzz_parser]   over HTTP: {confirmed[-1]['request']} -> {confirmed[-1]['status']}")
    return confirmed


# --- HTTP API ----------------------------------------------------------------------

# Reachable without a login by design: discovery, the login itself, and the
# signed callback URLs (their token is the credential).
PUBLIC = {
    "GET /v2",
    "GET /v2/",
    "GET /versions",
    "GET /identity/v3/",
    "POST /identity/v3/auth/tokens",
    "POST /api/callbacks/{token}",
    "PUT /api/callbacks/{token}",
    "POST /api/callbacks/{token}/heartbeat",
}
# Documented, and not fuzzed: run-action runs the named action in the web
# process (std.http with run_sync reaches outside), which no worker-free run
# may do.
NOT_FUZZED = {"POST /v2/action_executions"}


def _request_of(resp) -> dict:
    req = resp.request
    body = req.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return {"method": req.method, "url": req.url, "body": (body or "")[:500]}


def fuzz_api(base: str, headers: dict, v2_schema: Path, examples: int, say: Callable[[str], None]) -> dict:
    import schemathesis
    from schemathesis import GenerationMode

    session = requests.Session()
    got = session.get(f"{base}/api/schema", params={"format": "json"}, headers=headers, timeout=60)
    if got.status_code != 200:
        raise RuntimeError(f"GET /api/schema answered {got.status_code}: {got.text[:300]}")
    api_doc = got.json()
    api_doc["paths"] = {p: v for p, v in api_doc.get("paths", {}).items() if p.startswith("/api/")}
    v2_doc = yaml.safe_load(v2_schema.read_text())
    ops_out: dict[str, dict] = {}
    findings: list[dict] = []
    unauth_open: list[str] = []
    totals = Counter()
    schema_errors: list[str] = []
    no_negative: list[str] = []

    for label, doc in (("/api/ (served by /api/schema)", api_doc), ("/v2 (api/openapi_v2.yaml)", v2_doc)):
        doc["servers"] = [{"url": base}]
        schema = schemathesis.openapi.from_dict(doc)
        for res in schema.get_all_operations():
            try:
                op = res.ok()
            except Exception as exc:  # noqa: BLE001 - an operation the loader cannot use
                schema_errors.append(f"{label}: {exc}"[:300])
                continue
            op_name = f"{op.method.upper()} {op.path}"
            if op_name in NOT_FUZZED:
                continue
            codes = Counter()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    strategy = op.as_strategy(generation_mode=mode)
                except Exception as exc:  # noqa: BLE001
                    schema_errors.append(f"{op_name} {mode}: {exc}"[:300])
                    continue

                # run() is called right below, in the same iteration: the loop variables it reads are current (B023).
                @settings(max_examples=examples, **FUZZ_SETTINGS)
                @given(case=strategy)
                def run(case) -> None:
                    try:
                        resp = case.call(base_url=base, session=session, headers=headers, timeout=60)
                    except Exception as exc:  # noqa: BLE001 - no answer at all is a finding too
                        codes["no answer"] += 1
                        findings.append(
                            {"operation": op_name, "mode": str(mode), "status": None, "error": str(exc)[:300]}
                        )
                        return
                    codes[resp.status_code] += 1
                    if resp.status_code >= 500:
                        findings.append(
                            {
                                "operation": op_name,
                                "mode": str(mode),
                                "status": resp.status_code,
                                "request": _request_of(resp),
                                "answer": resp.content[:300].decode("utf-8", "replace"),
                            }
                        )

                try:
                    with with_reporter(lambda *_: None):  # hypothesis' "reproduce with @seed" lines
                        run()
                except Unsatisfiable:  # nothing in the operation can be made invalid (no parameters, no body)
                    no_negative.append(op_name)
                except Exception as exc:  # noqa: BLE001
                    schema_errors.append(f"{op_name} {mode}: {type(exc).__name__}: {exc}"[:300])
            # Once without the token: does it ask for a login?
            try:
                case = op.as_strategy(generation_mode=GenerationMode.POSITIVE).example()
                resp = case.call(base_url=base, session=requests.Session(), timeout=60)
                anon = resp.status_code
                if 200 <= anon < 300 and op_name not in PUBLIC:
                    unauth_open.append(f"{op_name} -> {anon}")
            except Exception as exc:  # noqa: BLE001
                anon = f"{type(exc).__name__}"
            n = sum(codes.values())
            totals.update(codes)
            ops_out[op_name] = {
                "requests": n,
                "codes": {str(k): v for k, v in sorted(codes.items(), key=str)},
                "without_token": anon,
            }
            say(
                f"[fuzz_api]   {op_name}: {n} requests, "
                + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str))
            )
    five = sum(v for k, v in totals.items() if isinstance(k, int) and k >= 500)
    return {
        "inputs": sum(totals.values()),
        "five_xx": five,
        "refused": sum(v for k, v in totals.items() if isinstance(k, int) and 400 <= k < 500),
        "no_answer": totals.get("no answer", 0),
        "operations": ops_out,
        "findings": findings[:40],
        "findings_total": len(findings),
        "five_xx_by_operation": dict(Counter(f["operation"] for f in findings if f.get("status"))),
        "answered_without_login": unauth_open,
        "schema_problems": schema_errors[:20],
        "no_negative_cases": no_negative,
        "not_fuzzed": sorted(NOT_FUZZED),
    }
