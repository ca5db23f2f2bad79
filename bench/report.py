"""docs/reliability.md from the result of ``manage.py reliability``: one
table per scenario with the same columns, then what the counts do not show."""

from __future__ import annotations

from pathlib import Path

from bench.reliability import TITLES, _short
from bench.scenarios import RUNNERS

COLUMNS = [
    ("started", "executions started"),
    ("finished", "finished"),
    ("stuck", "stuck"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("inputs", "inputs fuzzed"),
    ("crashes", "crashes / hangs"),
    ("five_xx", "5xx seen"),
    ("refused", "requests refused"),
]


def table(out: dict) -> str:
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |\n| " + " | ".join("---" for _ in COLUMNS) + " |\n"
    cells = [str(out[k]) if k in out else "—" for k, _ in COLUMNS]
    return head + "| " + " | ".join(cells) + " |\n"


DEFINITIONS = """\
- **executions started**: executions that exist at the end (POST answered 201, or created without an answer).
- **finished**: of those, terminal (SUCCESS, ERROR, CANCELLED) when the scenario's bound ended.
- **stuck**: not terminal at the bound (nothing legitimately waits in these workflows; PAUSED counts).
- **lost**: the action never reached the outside service, or its result never came back (the action ended
  in ERROR without the service's answer, e.g. failed by the overdue sweep); for completions: an action no
  completion was applied to. Not counted as lost: an action whose worker was killed mid-call and that
  ended in ERROR "Worker lost ..." with that reason, as specified (its effect may have happened, so
  only a task's retry may run it again); the scenario's text gives their number.
- **duplicated**: the outside service was called more than once for one action execution (each execution has
  one task with one action, and the call's URL carries the execution id), a POST that made two executions, or a
  completion applied twice (two different results acknowledged with 200, or the next task created twice).
- **inputs fuzzed**: generated definitions (parser) or requests (API).
- **crashes / hangs**: parser or engine raised something other than its own errors, or took over 3 s on
  one input.
- **5xx seen**: answers >= 500.
- **requests refused**: 4xx answers, plus connections refused while the web process was down.
"""


def _details(name: str, out: dict) -> list[str]:
    lines = []
    if "error" in out:
        return [f"The scenario could not run: `{out['error']}`."]
    if name in ("worker_kill9", "queue_backlog", "worker_sigterm", "stop_all", "web_kill9"):
        lines.append(
            f"States at the bound: {out.get('by_state')}; outside calls {out.get('calls_total')}; "
            f"never ran {out.get('never_ran')}, result lost {out.get('result_lost')}, "
            "failed 'Worker lost' with the reason (killed mid-call, by design) "
            f"{out.get('failed_worker_lost', 0)}."
        )
        if out.get("error_reasons"):
            lines.append("Why actions failed: " + "; ".join(f"{v} x `{k}`" for k, v in out["error_reasons"].items()))
        if out.get("duplicate_calls"):
            lines.append(
                "Calls per duplicated execution (sample): "
                + ", ".join(f"`{k}`: {v}" for k, v in out["duplicate_calls"].items())
            )
        if out.get("stuck_sample"):
            lines.append(f"Stuck (sample): {out['stuck_sample']}")
    if name == "worker_kill9":
        lines.append(
            f"{out.get('calls_when_killed')} calls had been made when the worker tree "
            f"({out.get('killed_processes')} processes) was killed; waited {out.get('waited_s')} s after "
            f"the kill (bound {out.get('bound_s')} s)."
        )
    if name == "queue_backlog":
        lines.append(f"{out.get('work_s'):g} s of calls queued for one pool worker.")
    if name == "web_kill9":
        lines.append(
            f"{out.get('posts')} POSTs: answers {out.get('answers')}, {out.get('no_answer')} cut off "
            f"without an answer ({out.get('no_answer_but_created')} of those created an execution), "
            f"{out.get('posts_refused_at_connect')} POSTs refused at connect while the web process was down "
            f"({out.get('connections_refused')} attempts, tried again every 0.1 s until it was back)."
        )
    if name == "worker_sigterm":
        lines.append(
            f"The SIGTERMed worker exited with {out.get('sigterm_exit_code')} after {out.get('sigterm_stop_s')} s."
        )
    if name == "stop_all":
        lines.append(
            f"Exit codes on SIGTERM: {out.get('exit_codes')}; {out.get('paused_by_shutdown')} executions "
            f"paused by shutdown; states right after the stop: {out.get('states_after_stop')}."
        )
    if name == "completions":
        lines.append(
            f"{out.get('completions')} PUT /v2/action_executions/<id> from {out.get('processes')} processes: "
            f"answers {out.get('answers')}; stored {out.get('stored_states')}; "
            f"{out.get('acknowledged_but_not_stored')} answered 200 for a result that is not the stored one; "
            f"rows of the next task per execution {out.get('next_task_rows')}."
        )
        if out.get("five_xx_sample"):
            lines.append(f"5xx / no answer (sample): {out['five_xx_sample']}")
    if name == "fuzz_parser":
        lines.append(
            f"{out.get('valid')} valid, {out.get('invalid')} refused with DefinitionError, "
            f"{out.get('engine_started')} started by the pure engine, {out.get('crashes')} crashes; "
            f"slowest parse {out.get('slowest_parse_s')} s. Every tenth input through "
            f"POST /v2/workflows/validate: {out.get('http_validate')}."
        )
        for k, v in (out.get("crash_kinds") or {}).items():
            lines.append(
                f"- crash **{k}** x{v['count']}: `{_short(v['message'], 200)}`; input: `{_short(v['input'], 200)!r}`"
            )
        for c in out.get("over_http") or []:
            lines.append(
                f"- the same input over HTTP: `{c['request']}` -> {c['status']}: `{_short(c.get('answer'), 160)}`"
            )
        for f in out.get("http_findings") or []:
            lines.append(
                f"- validate answered {f['status']}: `{_short(f['answer'], 200)}` for `{_short(f['input'], 150)!r}`"
            )
    if name == "fuzz_api":
        lines.append(
            f"{len(out.get('operations') or {})} operations; "
            f"{out.get('findings_total')} findings; 5xx by operation {out.get('five_xx_by_operation')}."
        )
        if out.get("answered_without_login"):
            lines.append(
                "Answered 2xx without a token (not public by design): "
                + ", ".join(f"`{x}`" for x in out["answered_without_login"])
            )
        seen = set()
        for f in out.get("findings") or []:
            key = (f["operation"], f.get("status"), _short(f.get("answer") or f.get("error"), 80))
            if key in seen:
                continue
            seen.add(key)
            req = f.get("request") or {}
            lines.append(
                f"- {f['operation']} ({f['mode']}) -> {f.get('status')}: `{req.get('method')} "
                f"{_short(req.get('url'), 200)}` body `{_short(req.get('body'), 200)}` answered "
                f"`{_short(f.get('answer') or f.get('error'), 200)}`"
            )
        if out.get("schema_problems"):
            lines.append(
                "Operations schemathesis could not generate for: "
                + "; ".join(f"`{_short(p, 150)}`" for p in out["schema_problems"][:8])
            )
    lines.append(f"Took {out.get('seconds')} s.")
    return lines


def findings(result: dict) -> list[str]:
    """One line per number that is not what Gust promises (nothing stuck,
    lost, duplicated, no 5xx, no crash), straight from the counts."""
    lines = []
    for name, out in result.get("scenarios", {}).items():
        if "error" in out:
            lines.append(f"`{name}`: could not run ({_short(out['error'], 120)})")
            continue
        bad = [
            f"{out[k]} {label}"
            for k, label in (
                ("duplicated", "duplicated"),
                ("lost", "lost"),
                ("stuck", "stuck"),
                ("crashes", "crashes/hangs"),
                ("five_xx", "5xx"),
            )
            if isinstance(out.get(k), int) and out[k] > 0
        ]
        if name == "web_kill9" and out.get("no_answer_but_created"):
            bad.append(f"{out['no_answer_but_created']} POSTs cut off without an answer that did create an execution")
        if name == "fuzz_api" and out.get("answered_without_login"):
            bad.append("answered without a login: " + ", ".join(out["answered_without_login"]))
        if bad:
            lines.append(f"`{name}` ({TITLES.get(name, name)}): " + "; ".join(bad))
    return lines


def render_markdown(result: dict, command: str) -> str:
    o = result.get("options", {})
    db = result.get("database", {})
    parts = [
        "# Reliability report\n",
        f"Written by `{command}` on {result.get('timestamp')} (commit {result.get('commit')}), "
        f"{db.get('vendor')} throwaway database `{Path(str(db.get('name'))).name}`, django-q2 "
        f"{result.get('broker')} broker. Real processes: gunicorn web (2 workers x 4 threads), `manage.py worker`, "
        "`manage.py run_tracker`, and the simulated outside service `bench/outside.py` whose `/record/<key>` counts "
        "every call. The API ran with its login (`GUST_API_AUTH=1`, an API token in `X-Auth-Token`).\n",
        f"Short settings, in production's order (lease 30 < Q timeout 300 < retry 360, queue deadline 3600): "
        f"django-q2 timeout {o.get('q_timeout')} s, retry {o.get('q_retry')} s "
        f"(`GUST_Q_TIMEOUT`, `GUST_Q_RETRY`), `GUST_WORKER_LEASE` {o.get('worker_lease')} s, "
        f"`GUST_WORKER_REDISPATCH_AFTER` {o.get('worker_redispatch_after')} s, "
        f"`GUST_WORKER_QUEUE_TIMEOUT` {o.get('worker_queue_timeout')} s, "
        f"`GUST_WORKER_STOP_TIMEOUT` {o.get('worker_stop_timeout')} s, tracker cycle (overdue sweep) "
        f"{o.get('query_interval')} s; each std.http call held {o.get('action_s')} s by the outside service.\n",
        "## Findings of this run\n",
        "\n".join(f"- {f}" for f in findings(result)) + "\n" if findings(result) else "None.\n",
        "Details under each scenario below.\n",
        "## What the columns mean\n",
        DEFINITIONS,
    ]
    for name, out in result.get("scenarios", {}).items():
        parts.append(f"## {TITLES.get(name, name)} (`{name}`)\n")
        doc = (RUNNERS[name].__doc__ or "").strip() if name in RUNNERS else ""
        if doc:
            parts.append(" ".join(doc.split()).replace("``", "`") + "\n")
        if "error" not in out:
            parts.append(table(out))
        parts.append("\n".join(_details(name, out)) + "\n")
    if result.get("failures"):
        parts.append("## Scenarios that could not run\n\n" + "\n".join(f"- {f}" for f in result["failures"]) + "\n")
    return "\n".join(parts)
