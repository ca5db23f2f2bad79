"""``mistral.workflow``: run a workflow on a remote Mistral v2 API (Mistral 23,
or another Gust) and wait for it, the way StackStorm tracked Mistral (seeds
000 and 001): by polling ``GET /v2/executions/<id>`` (``tracking: poll``,
the results tracker), by Mistral's execution notifications (``tracking:
callback``: a webhook publisher in ``params.notify`` pointing at a signed
Gust URL), or both (``hybrid``: the first to come back wins, once).

- Start (a worker): ``POST <url>/executions`` with ``workflow_name``,
  ``input`` and ``params``; the remote execution id is kept in the action's
  ``runtime_context`` (``remote_execution_id``).
- Result: the remote's SUCCESS output is the task result; ERROR fails the
  task with the remote's ``state_info``; a remote CANCELLED fails it too,
  saying so.
- Cancel: a cancelled Gust action (its task or workflow cancelled) sends
  ``PUT <url>/executions/<id>`` ``{"state": "CANCELLED"}`` after commit.

Every request goes through the egress policy (``workflows.egress``); answers
are read up to ``MAX_BODY`` bytes, requests wait at most ``timeout`` seconds
(1 to ``MAX_TIMEOUT``). What goes wrong is a sentence on the task naming the
remote, never an exception of Gust's own API.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.db import transaction

from core import actions
from core.actions import REQUIRED, ActionDef, ActionFailed
from core.states import State
from tracker import http
from tracker.queries import ActionInfo, QueryError, QueryResult
from workflows import egress, queue

if TYPE_CHECKING:
    from workflows.models import ActionExecution

logger = logging.getLogger("gust.remote")

NAME = "mistral.workflow"
REMOTE_ID = "remote_execution_id"
# Mistral's workflow events that end an execution (mistral/notifiers/notification_events.py).
FINISH_EVENTS = ("WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED")
MAX_BODY = http.MAX_BODY
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0
STATE_INFO_MAX = 65_536  # characters of a remote state_info kept in the task's error

PARAMS = (
    ("url", REQUIRED),  # the remote's /v2 root, e.g. http://mistral:8989/v2 ("/v2" is added when missing)
    ("workflow_name", REQUIRED),
    ("input", None),
    ("params", None),
    ("description", None),
    ("auth_token", None),  # sent as X-Auth-Token (Keystone's header, which Gust's /v2 reads too)
    ("timeout", None),  # seconds per request to the remote
    ("tracking", "callback"),
    ("query_interval", None),
    ("grace", None),
)


def check(inp: dict) -> list[str]:
    """Pure checks of an evaluated input, each problem a sentence."""
    problems = []
    url = inp.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"parameter 'url' must be the http(s) URL of a Mistral v2 API, not {url!r}")
    name = inp.get("workflow_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        problems.append(f"parameter 'workflow_name' must be a workflow name (1-255 characters), not {name!r}")
    for key in ("input", "params"):
        if inp.get(key) is not None and not isinstance(inp[key], dict):
            problems.append(f"parameter '{key}' must be an object, not {type(inp[key]).__name__}")
    notify = (inp.get("params") or {}).get("notify") if isinstance(inp.get("params"), dict) else None
    if notify is not None and not isinstance(notify, list):
        problems.append("parameter 'params.notify' must be a list of publishers")
    token = inp.get("auth_token")
    if token is not None and (not isinstance(token, str) or len(token) > 8192 or "\n" in token):
        problems.append("parameter 'auth_token' must be one line of text (at most 8192 characters)")
    timeout = inp.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= MAX_TIMEOUT
    ):
        problems.append(f"parameter 'timeout' must be a number of seconds from 1 to {MAX_TIMEOUT:g}, not {timeout!r}")
    return problems


ACTION = ActionDef(
    NAME,
    "async",
    PARAMS,
    "Starts workflow 'workflow_name' on the Mistral v2 API at 'url' (Mistral, or another Gust) and waits for it: "
    "tracking=poll queries GET /v2/executions/<id> every query_interval, callback passes Mistral's params.notify "
    "webhook, hybrid does both. The remote output is the result; cancelling the task cancels the remote execution.",
    impl="tracker.remote.start",
    dispatch=True,
    validate=check,
)


def register() -> None:
    """Called from TrackerConfig.ready(): the action and its query function."""
    from tracker import queries

    actions.register(ACTION)
    queries.QUERIES[NAME] = status


# --- talking to the remote -------------------------------------------------------


def api_root(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v2") else f"{url}/v2"


def _headers(inp: dict) -> dict[str, str]:
    headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "Gust"}
    if inp.get("auth_token"):
        headers["X-Auth-Token"] = inp["auth_token"]
    return headers


def _timeout(inp: dict) -> float:
    value = inp.get("timeout")
    return float(value) if isinstance(value, (int, float)) and 1 <= value <= MAX_TIMEOUT else DEFAULT_TIMEOUT


def _fault(body: bytes) -> str:
    """Mistral's error text (``faultstring``), else the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("faultstring"):
        return str(data["faultstring"])[:2000]
    return body[:300].decode("utf-8", "replace").strip()


def _call(method: str, inp: dict, path: str, body: dict | None, what: str) -> Any:
    """One request to the remote's /v2; its JSON answer. Raises ActionFailed
    with a sentence naming the remote for a refused URL, a network error, an
    HTTP error or an answer that is not JSON (or larger than MAX_BODY)."""
    url = api_root(inp["url"]) + path
    shown = egress.shown(url)
    try:
        with (
            egress.session() as session,
            session.request(
                method,
                url,
                data=json.dumps(body) if body is not None else None,
                headers=_headers(inp),
                timeout=_timeout(inp),
                allow_redirects=False,
                stream=True,
            ) as resp,
        ):
            raw = resp.raw.read(MAX_BODY + 1, decode_content=True)
            status_code = resp.status_code
    except egress.EgressRefused as exc:
        raise ActionFailed(str(exc)) from exc
    except requests.RequestException as exc:
        raise ActionFailed(f"Remote Mistral at {shown} is unreachable ({what}): {exc}") from exc
    if len(raw) > MAX_BODY:
        raise ActionFailed(f"Remote Mistral at {shown} answered more than {MAX_BODY} bytes ({what})")
    if status_code >= 300:
        detail = _fault(raw)
        raise ActionFailed(
            f"Remote Mistral at {shown} refused to {what}: HTTP {status_code}" + (f": {detail}" if detail else "")
        )
    try:
        return json.loads(raw)
    except ValueError:
        raise ActionFailed(
            f"Remote Mistral at {shown} answered HTTP {status_code} to {what} with a body that "
            f"is not JSON: {raw[:200].decode('utf-8', 'replace')!r}"
        ) from None


def notify_entry(action_id: str, attempt: int) -> dict:
    """Mistral's webhook publisher for the three events that end an
    execution, pointed at this action attempt's signed notification URL."""
    from workflows.callbacks import callback_url

    return {
        "type": "webhook",
        "url": callback_url(action_id, attempt) + "/notification",
        "event_types": list(FINISH_EVENTS),
    }


def start(inp: dict, action: ActionExecution) -> dict:
    """The worker implementation: start the remote execution. Returns
    {remote_execution_id} for the action's runtime_context. When the action
    was cancelled while the request was in flight, the remote execution is
    cancelled right away (the cancel receiver had no id to cancel yet)."""
    from workflows import services as wf_services

    params = dict(inp.get("params") or {})
    if (inp.get("tracking") or "callback") in ("callback", "hybrid"):
        params["notify"] = [*(params.get("notify") or []), notify_entry(action.id, action.attempt)]
    body = {
        "workflow_name": inp["workflow_name"],
        "input": json.dumps(inp.get("input") or {}),
        "params": json.dumps(params),
        "description": inp.get("description") or f"started by Gust action execution {action.id}",
    }
    answer = _call("POST", inp, "/executions", body, f"start workflow '{inp['workflow_name']}'")
    remote_id = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(remote_id, str) or not remote_id:
        raise ActionFailed(
            f"Remote Mistral at {egress.shown(api_root(inp['url']))} started workflow "
            f"'{inp['workflow_name']}' but its answer names no execution id"
        )
    info = {REMOTE_ID: remote_id}
    wf_services.record_action_info(action.id, info)
    if not _still_running(action.id):
        _cancel(inp, remote_id, "its Gust action was cancelled while it started")
    return info


def _still_running(action_id: str) -> bool:
    from workflows.models import ActionExecution

    return ActionExecution.objects.filter(id=action_id, state=State.RUNNING).exists()


def result_of(execution: Any, remote_id: str) -> QueryResult:
    """Map a remote execution (Mistral's resource) to a tracker result:
    SUCCESS gives its output; ERROR its state_info; CANCELLED is an error
    saying so; every other state keeps waiting."""
    if not isinstance(execution, dict):
        return QueryResult(True, State.ERROR, f"Remote execution {remote_id}: the answer is not a JSON object")
    state = str(execution.get("state") or "").upper()
    info = execution.get("state_info")
    # (No finished_at: Mistral's updated_at has whole seconds, too coarse for the latency figures.)
    if state == "SUCCESS":
        return QueryResult(True, State.SUCCESS, _output(execution.get("output")))
    if state == "ERROR":
        return QueryResult(True, State.ERROR, failure(remote_id, info))
    if state == "CANCELLED":
        return QueryResult(True, State.ERROR, cancelled(remote_id, info))
    return QueryResult.running()


def failure(remote_id: str, state_info: Any) -> str:
    text = str(state_info)[:STATE_INFO_MAX] if state_info else "no state_info"
    return f"Remote workflow execution {remote_id} failed: {text}"


def cancelled(remote_id: str, state_info: Any) -> str:
    return f"Remote workflow execution {remote_id} was cancelled" + (
        f": {str(state_info)[:STATE_INFO_MAX]}" if state_info else ""
    )


def _output(value: Any) -> Any:
    """Mistral sends ``output`` as a JSON string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


NOTIFICATION_FETCH_TIMEOUT = 10.0  # seconds: the GET a notification triggers holds a web thread


def fetch(inp: dict, remote_id: str, most: float = MAX_TIMEOUT) -> QueryResult:
    """GET the remote execution once (a kept connection of this thread),
    waiting at most the action's ``timeout`` and ``most`` seconds.
    Raises QueryError when asking again may help (network, HTTP 5xx, 429);
    a refused URL, an unknown execution, a refused token or an answer that is
    not JSON are final and come back as an ERROR result."""
    url = f"{api_root(inp['url'])}/executions/{remote_id}"
    headers = {k: v for k, v in _headers(inp).items() if k != "Content-Type"}
    try:
        body = http.get_json(url, timeout=min(_timeout(inp), most), headers=headers)
    except egress.EgressRefused as exc:
        return QueryResult(True, State.ERROR, str(exc))
    except http.StatusError as exc:
        if exc.status is None or exc.status >= 500 or exc.status == 429:
            raise QueryError(str(exc)) from exc
        return QueryResult(True, State.ERROR, f"Remote Mistral: {exc}")
    return result_of(body, remote_id)


def status(action: ActionInfo) -> QueryResult:
    """The tracker's query function (an ``ActionInfo``)."""
    remote_id = action.runtime_context.get(REMOTE_ID)
    if not remote_id:
        if not action.handed_over:
            return QueryResult.running()  # the worker has not started it yet
        raise QueryError("the remote execution id is unknown: the start request's answer named none")
    return fetch(action.input, remote_id)


# --- cancelling --------------------------------------------------------------------


def on_action_finished(sender: object, action: ActionExecution, **kwargs: object) -> None:
    """Receiver of ``action_finished``: a mistral.workflow that ended without
    the remote's success (cancelled with its task or workflow, timed out,
    overdue) cancels its remote execution, in a worker job after commit."""
    if action.name == NAME and action.state in (State.CANCELLED, State.ERROR):
        transaction.on_commit(lambda: queue.enqueue("tracker.remote.cancel_remote", [(action.id,)], "cancel"))


def cancel_remote(action_id: str) -> bool:
    """The worker job: ``PUT <url>/executions/<id>`` state CANCELLED. True
    when the remote accepted it. An action that ended in ERROR is asked about
    first: when the error came from the remote (it failed, or was cancelled
    there) there is nothing to cancel. A failure is logged, not raised (the
    remote execution may have finished meanwhile, which is no error)."""
    from workflows.models import ActionExecution

    row = ActionExecution.objects.filter(id=action_id).values_list("input", "runtime_context", "state").first()
    if row is None or not (row[1] or {}).get(REMOTE_ID):
        return False  # not started remotely yet: start() cancels it once it knows the id
    inp, remote_id, state = row[0], row[1][REMOTE_ID], row[2]
    if state == State.ERROR:
        try:
            if fetch(inp, remote_id).done:
                return False
        except QueryError as exc:
            logger.warning("remote execution %s: state unknown (%s); cancelling it", remote_id, exc)
    return _cancel(inp, remote_id, f"its Gust action execution {action_id} ended {state}")


def _cancel(inp: dict, remote_id: str, why: str) -> bool:
    try:
        _call(
            "PUT",
            inp,
            f"/executions/{remote_id}",
            {"state": "CANCELLED", "state_info": f"Cancelled: {why}"},
            f"cancel execution {remote_id}",
        )
    except ActionFailed as exc:
        logger.warning("remote execution %s not cancelled: %s", remote_id, exc)
        return False
    logger.info("remote execution %s cancelled (%s)", remote_id, why)
    return True
