"""Worker implementations of the built-in actions that do I/O.

Each takes (input, action_execution_row) and returns the result or raises
``ActionFailed``; an async action returns what it learnt while starting
(kept in the action's ``runtime_context``), or None. They run in a
django-q2 worker, outside any transaction.
"""

from __future__ import annotations

import time

import requests

from core.actions import ActionFailed
from workflows import conf, egress
from workflows.callbacks import callback_url


def _request(inp: dict, extra_headers: dict | None = None) -> dict:
    headers = dict(inp.get("headers") or {})
    headers.update(extra_headers or {})
    kwargs = {
        k: inp[k]
        for k in ("params", "json", "cookies", "proxies", "verify", "allow_redirects")
        if inp.get(k) is not None
    }
    if inp.get("auth"):
        kwargs["auth"] = tuple(inp["auth"]) if isinstance(inp["auth"], list) else inp["auth"]
    try:
        with egress.session() as session:  # the egress policy checks every address it connects to
            resp = session.request(
                (inp.get("method") or "GET").upper(),
                inp["url"],
                data=inp.get("body"),
                headers=headers,
                timeout=inp.get("timeout") or 60,
                **kwargs,
            )
    except egress.EgressRefused as exc:
        raise ActionFailed(str(exc)) from exc
    except requests.RequestException as exc:
        raise ActionFailed(f"HTTP request to {inp['url']} failed: {exc}") from exc
    try:
        content = resp.json()
    except ValueError:
        content = resp.text
    result = {"status": resp.status_code, "headers": dict(resp.headers), "content": content}
    if resp.status_code >= 400:
        raise ActionFailed(result)
    return result


def http(inp: dict, action) -> dict:
    return _request(inp)


def _async_headers(action) -> dict:
    """Mistral's five headers, plus Gust's signed per-attempt callback URL."""
    task = action.task_execution
    base = conf.get("PUBLIC_URL").rstrip("/")
    return {
        "Mistral-Workflow-Name": action.workflow_name or "",
        "Mistral-Workflow-Execution-Id": action.workflow_execution_id or "",
        "Mistral-Task-Id": task.id if task else "",
        "Mistral-Action-Execution-Id": action.id,
        # The base URL, as Mistral's async-actions guide says: the receiver
        # sends its result to <Mistral-Callback-URL>/v2/action-executions/<id>.
        "Mistral-Callback-URL": base,
        "Gust-Callback-URL": callback_url(action.id, action.attempt),
    }


def mistral_http(inp: dict, action) -> None:
    """Send the request with Mistral's headers; the receiver completes the
    action later with PUT /v2/action_executions/<id> (or the signed
    Gust-Callback-URL). Returns nothing: the action stays RUNNING."""
    _request(inp, _async_headers(action))


def http_job(inp: dict, action) -> dict:
    """Start a job (POST by default). Returns what the results tracker needs
    to poll it: the ``status_url`` and ``job_id`` the job's JSON answer names."""
    answer = _request(inp, _async_headers(action))
    content = answer["content"] if isinstance(answer["content"], dict) else {}
    return {k: content[k] for k in ("status_url", "job_id") if k in content}


def sleep(inp: dict, action) -> None:
    time.sleep(float(inp["seconds"]))
