"""Task policies as small pure hooks on a task's life, as Mistral's
``mistral/engine/policies.py`` orders them.

- :func:`before_start`: ``pause-before``, ``wait-before``, ``timeout``
  (its clock starts when the task first starts, wait-before included).
- :func:`after_complete`: ``wait-after``, ``fail-on``, ``retry``.
- :func:`fire`: a durable timer of the task is due.

Each hook changes the task through the engine run it is given and returns
commands through it (``StartTimer``, ``CancelTimers``); a wait is always a
timer row, never a sleep, and a task with no wait runs its action in the
same step. Policy values may be expressions, evaluated in the task's
context when the hook runs; a value that fails or has the wrong type fails
the task with the reason. The state a policy keeps lives in the task's
``runtime_context`` under the keys below.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from core.lang.expressions import ExprContext, ExpressionError, evaluate
from core.lang.spec import Retry, TaskSpec, WorkflowSpec
from core.model import CancelTimers, Command, Snapshot, StartTimer, TaskView
from core.states import TERMINAL, State

# runtime_context keys
PAUSED_BEFORE = "paused_before"
WAITED_BEFORE = "waited_before"
WAITED_AFTER = "waited_after"
AFTER_STATE = "wait_after_state"  # [state, state_info] to end in when wait-after is over
RETRY_NO = "retry_no"
TIMEOUT = "timeout"
DELAYED = "delayed"  # a join waiting for its retry timer, not for arrivals
TIMERS = "timers"  # kind -> seconds, for the pages ("retry 2 of 5")
CONCURRENCY = "concurrency"  # a with-items task's, as Mistral's ConcurrencyPolicy sets it
WITH_ITEMS = "with_items"  # the engine's item counters

_RESET = (PAUSED_BEFORE, WAITED_BEFORE, WAITED_AFTER, AFTER_STATE, RETRY_NO, TIMEOUT, DELAYED, TIMERS, WITH_ITEMS)


_POLICY_CLASS = {
    "timeout": "TimeoutPolicy",
    "wait-before": "WaitBeforePolicy",
    "wait-after": "WaitAfterPolicy",
    "concurrency": "ConcurrencyPolicy",
    "pause-before": "PauseBeforePolicy",
    "fail-on": "FailOnPolicy",
    "retry": "RetryPolicy",
}


class PolicyError(Exception):
    pass


class _Run(Protocol):
    """What a policy may do to the engine run it is given (core.engine._Run)."""

    spec: WorkflowSpec
    snap: Snapshot

    def command(self, cmd: Command) -> None: ...
    def task_ctx(self, task: TaskView, outbound: bool = False) -> ExprContext: ...
    def set_task_state(self, task: TaskView, state: State, info: str | None = None, old: str | None = None) -> None: ...
    def set_wf_state(self, state: State, info: str | None = None) -> None: ...
    def run_action(self, task: TaskView) -> None: ...
    def complete_task(
        self, task: TaskView, state: State, result: Any, info: str | None, *, again: bool = False
    ) -> None: ...
    def end_live_actions(self, task: TaskView, state: State, reason: str, output: Any = None) -> None: ...
    def force_fail(self, task: TaskView, msg: str) -> None: ...
    def invalidate(self, task: TaskView) -> None: ...

    ready: list[TaskView]

    def run_failure(self, task: TaskView, error: Any) -> str: ...
    def completion_failure(self, task: TaskView, error: Any) -> str: ...


def _value(run: _Run, task: TaskView, raw: Any, name: str, kind: str, outbound: bool = False) -> Any:
    try:
        value = evaluate(raw, run.task_ctx(task, outbound=outbound))
    except ExpressionError as exc:
        raise PolicyError(f"Failed to evaluate the '{name}' policy: {exc}") from None
    if kind == "bool":
        return bool(value)
    if kind in ("seconds", "count"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if kind == "count":
            ok = ok and float(value).is_integer()
        if not ok:
            what = "a whole number >= 0" if kind == "count" else "a number of seconds >= 0"
            # Mistral's text (base.TaskPolicy._validate) names the policy's class
            cls = _POLICY_CLASS.get(name.split(".")[0], "TaskPolicy")
            raise PolicyError(
                f"Invalid data type in {cls}: the '{name}' value {value!r} is not {what}. "
                f"Value(s) can be shown after YAQL evaluating. If you use YAQL here, please correct it."
            )
        return int(value) if kind == "count" else float(value)
    return value


def _timer(run: _Run, task: TaskView, kind: str, seconds: float) -> None:
    task.runtime_context.setdefault(TIMERS, {})[kind] = seconds
    run.command(StartTimer(task.id, kind, seconds))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def before_start(run: _Run, task: TaskView) -> bool:
    """True when the task's action may start now."""
    rc = task.runtime_context
    p = run.spec.tasks[task.name].policies
    try:
        if not rc.get(PAUSED_BEFORE) and _value(run, task, p.pause_before, "pause-before", "bool"):
            rc[PAUSED_BEFORE] = True
            run.set_task_state(task, State.IDLE, "Set by 'pause-before' policy")
            if run.snap.state == State.RUNNING:
                run.set_wf_state(State.PAUSED)
            return False
        timeout = _value(run, task, p.timeout, "timeout", "seconds")
        wait = _value(run, task, p.wait_before, "wait-before", "seconds")
        concurrency = _value(run, task, p.concurrency, "concurrency", "count")
    except PolicyError as exc:
        # An unusable policy value is an error in the workflow's text: the
        # task and the workflow fail, as Mistral's InvalidModelException in
        # before_task_start does ("Failed to run task [...]").
        run.force_fail(task, run.run_failure(task, exc))
        return False
    if concurrency:
        rc[CONCURRENCY] = concurrency
    if timeout > 0:
        rc[TIMEOUT] = timeout
        _timer(run, task, "timeout", timeout)
    if wait > 0 and not rc.get(WAITED_BEFORE):
        rc[WAITED_BEFORE] = True
        run.set_task_state(task, State.RUNNING_DELAYED, f"Delayed by 'wait-before' policy [delay={_seconds(wait)}]")
        _timer(run, task, "wait-before", wait)
        return False
    return True


def after_complete(run: _Run, task: TaskView) -> bool:
    """True when the task's transitions may be followed now; False when a
    policy delayed it (wait-after, a retry)."""
    rc = task.runtime_context
    tspec = run.spec.tasks[task.name]
    p = tspec.policies
    try:
        wait = _value(run, task, p.wait_after, "wait-after", "seconds", outbound=True)
        if wait > 0 and not rc.get(WAITED_AFTER):
            rc[WAITED_AFTER] = True
            rc[AFTER_STATE] = [task.state, task.state_info]
            run.set_task_state(task, State.RUNNING_DELAYED, f"Delayed by 'wait-after' policy [delay={_seconds(wait)}]")
            _timer(run, task, "wait-after", wait)
            return False
        if task.state == State.SUCCESS and _value(run, task, p.fail_on, "fail-on", "bool", outbound=True):
            run.set_task_state(task, State.ERROR, "Failed by 'fail-on' policy")
        return not (p.retry and _retry(run, task, tspec, p.retry))
    except PolicyError as exc:
        run.force_fail(task, run.completion_failure(task, exc))
        return False


def _retry(run: _Run, task: TaskView, tspec: TaskSpec, r: Retry) -> bool:
    """Mistral's RetryPolicy.after_task_complete: True when the task runs again."""
    rc = task.runtime_context
    count = _value(run, task, r.count, "retry.count", "count", outbound=True)
    if count == 0:
        return False
    continue_on = _value(run, task, r.continue_on, "retry.continue-on", "any", outbound=True) if r.continue_on else None
    break_on = _value(run, task, r.break_on, "retry.break-on", "any", outbound=True) if r.break_on else None
    state = task.state
    if state not in (State.SUCCESS, State.ERROR):
        return False
    retry_no = int(rc.get(RETRY_NO, 0))  # kept after the last attempt: the report shows it (Mistral's retry_no)
    stop = (state == State.SUCCESS and not r.continue_on) or (r.continue_on and not continue_on)
    if retry_no >= count or (state == State.ERROR and break_on) or stop:
        rc.pop(DELAYED, None)
        return False
    rc[RETRY_NO] = retry_no + 1
    # Mistral's invalidate_result: the attempts so far no longer count; a
    # with-items task runs all its items again.
    run.invalidate(task)
    delay = _retry_delay(run, task, r, retry_no)
    info = f"Delayed by 'retry' policy [delay={_seconds(delay)}]"
    if tspec.join is not None:
        rc[DELAYED] = True
        run.set_task_state(task, State.WAITING, info)
    else:
        run.set_task_state(task, State.RUNNING_DELAYED, info)
    if delay > 0:
        _timer(run, task, "retry", delay)
    else:
        run.ready.append(task)  # no wait: again in this step, without a timer
    return True


def _retry_delay(run: _Run, task: TaskView, r: Retry, retry_no: int) -> float:
    delay = _value(run, task, r.delay, "retry.delay", "seconds", outbound=True)
    delay *= float(r.backoff) ** retry_no
    if r.max_delay is not None:
        delay = min(delay, _value(run, task, r.max_delay, "retry.max-delay", "seconds", outbound=True))
    if r.jitter:
        delay += delay * float(r.jitter) * random.random()
    return delay


def fire(run: _Run, task: TaskView, kind: str) -> None:
    """A timer of the task is due; one that no longer applies is a no-op."""
    rc = task.runtime_context
    rc.get(TIMERS, {}).pop(kind, None)
    if kind in ("wait-before", "retry"):
        if task.state == State.RUNNING_DELAYED or (task.state == State.WAITING and rc.get(DELAYED)):
            rc.pop(DELAYED, None)
            run.run_action(task)
    elif kind == "wait-after":
        if task.state == State.RUNNING_DELAYED and rc.get(AFTER_STATE):
            state, info = rc.pop(AFTER_STATE)
            run.complete_task(task, State(state), task.result, info, again=True)
    elif kind == "timeout":
        if task.state in TERMINAL:
            return
        seconds = rc.get(TIMEOUT, 0)
        msg = f"Task timed out [timeout(s)={_seconds(seconds)}]."
        run.end_live_actions(task, State.ERROR, msg, output={"result": msg})
        run.command(CancelTimers(task.id, ("wait-before", "wait-after", "retry")))
        rc.pop(AFTER_STATE, None)
        rc.pop(TIMEOUT, None)
        run.complete_task(task, State.ERROR, None, msg)


def reset(task: TaskView) -> None:
    """An operator reruns the task: its policies apply again from the start."""
    for key in _RESET:
        task.runtime_context.pop(key, None)
