"""The pure workflow engine: (spec, snapshot, event) -> decision.

No Django, no I/O. ``handle()`` works on a copy of the snapshot the caller
gives it, applies one event, runs every engine-local step that follows
(``std.noop``/``std.echo``/``std.fail`` results, transitions, joins, engine
commands) until nothing more can happen without the outside world, and
returns a :class:`Decision`: which task and action executions are new or
changed, which actions a worker must run, and the trace events to log.

Everything a workflow controls is bounded by the :class:`Limits` the caller
passes: after ``limits.engine_steps`` tasks started in one call (or
``limits.engine_seconds`` spent on them), ``handle`` stops with
``Decision.more`` set and the caller continues with a
:class:`Continue` event in a new transaction; a result, the published
variables, the context or the output larger than the field size limit ends
the task (or workflow) in ERROR with the reason.

Semantics follow Mistral's direct workflows: start tasks are the tasks no
transition leads to; every transition to a task creates a new execution of it
(except a ``join`` task, which collects arrivals); a task in ERROR fails the
workflow unless one of its ``on-error`` transitions fired.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from workflows import actions
from workflows.lang.expressions import ExprContext, ExpressionError, evaluate
from workflows.lang.limits import DEFAULT, Limits
from workflows.lang.spec import TaskSpec, Transition, WorkflowSpec
from workflows.lang.values import NotJson, check_size, to_json
from workflows.states import ACTIVE, OPERATOR_TRANSITIONS, TERMINAL, State

# --- snapshot ----------------------------------------------------------------


@dataclass
class ActionView:
    id: str
    name: str
    state: str
    input: dict = field(default_factory=dict)
    output: Any = None
    state_info: str | None = None
    is_sync: bool = True


@dataclass
class TaskView:
    id: str
    name: str
    state: str
    seq: int  # creation order inside the execution
    state_info: str | None = None
    result: Any = None
    published: dict = field(default_factory=dict)
    runtime_context: dict = field(default_factory=dict)  # join arrivals, error handling
    processed: bool = False
    started: bool = False
    finished: bool = False
    actions: list[ActionView] = field(default_factory=list)

    def view(self) -> dict:
        """What ``task(name)`` returns inside an expression."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "state_info": self.state_info,
            "result": self.result,
            "published": self.published,
        }


@dataclass
class Snapshot:
    id: str
    workflow_name: str
    state: str
    input: dict
    params: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)  # input + vars + everything published
    output: dict = field(default_factory=dict)
    state_info: str | None = None
    # The tasks the engine may need: active or unprocessed ones, unhandled
    # failures and the latest of each name. Not the whole history, so a long
    # loop costs the same per step at its millionth iteration as at its first.
    tasks: list[TaskView] = field(default_factory=list)
    next_seq: int | None = None  # seq of the next task; None: len(tasks)


# --- events ------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class ActionCompleted:
    action_id: str
    state: str  # SUCCESS or ERROR
    result: Any = None


@dataclass(frozen=True)
class Pause:
    reason: str | None = None  # kept in state_info, e.g. "paused by shutdown"


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Cancel:
    reason: str | None = None  # kept in state_info, as PUT /v2/executions/<id> sends it


@dataclass(frozen=True)
class Continue:
    """Go on with the tasks an earlier call left ready when it reached the
    step limit; nothing happens unless the execution is still RUNNING."""


@dataclass(frozen=True)
class RerunTask:
    """An operator runs a failed task again (a new action execution)."""

    task_id: str


@dataclass(frozen=True)
class SkipTask:
    """An operator skips a failed task: it ends SKIPPED and its on-success
    and on-complete transitions are followed."""

    task_id: str


Event = Start | ActionCompleted | Pause | Resume | Cancel | RerunTask | SkipTask | Continue


class Conflict(Exception):
    """The event does not apply to the execution as it is now (e.g. an action
    that is no longer RUNNING). ``state`` is the current state."""

    def __init__(self, message: str, state: str):
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class TraceEvent:
    kind: str  # WORKFLOW_LAUNCHED, TASK_RUNNING, TASK_SUCCEEDED, ...
    execution_id: str
    task_id: str | None = None
    task_name: str | None = None
    state_info: str | None = None


@dataclass
class Decision:
    snapshot: Snapshot
    new_tasks: list[TaskView] = field(default_factory=list)
    changed_tasks: dict[str, TaskView] = field(default_factory=dict)
    new_actions: list[tuple[TaskView, ActionView]] = field(default_factory=list)
    changed_actions: dict[str, ActionView] = field(default_factory=dict)
    workflow_changed: bool = False
    dispatch: list[str] = field(default_factory=list)  # action ids a worker must run
    trace: list[TraceEvent] = field(default_factory=list)
    more: bool = False  # the step limit was reached: send Continue in a new transaction


_TASK_EVENT = {
    State.WAITING: "TASK_WAITING",
    State.RUNNING: "TASK_RUNNING",
    State.SUCCESS: "TASK_SUCCEEDED",
    State.ERROR: "TASK_FAILED",
    State.CANCELLED: "TASK_CANCELLED",
    State.SKIPPED: "TASK_SKIPPED",
}
_WF_EVENT = {
    State.SUCCESS: "WORKFLOW_SUCCEEDED",
    State.ERROR: "WORKFLOW_FAILED",
    State.CANCELLED: "WORKFLOW_CANCELLED",
    State.PAUSED: "WORKFLOW_PAUSED",
}


def new_id() -> str:
    return str(uuid.uuid4())


class _Run:
    """One ``handle()`` call: the working copy and what changed in it."""

    def __init__(self, spec: WorkflowSpec, snap: Snapshot, make_id: Callable[[], str], limits: Limits = DEFAULT,
                 clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.snap = snap
        self.make_id = make_id
        self.limits = limits
        self.clock = clock
        self.started_at = clock()
        self.steps = 0
        if snap.next_seq is None:
            snap.next_seq = len(snap.tasks)
        self.d = Decision(snapshot=snap)
        self.ready: list[TaskView] = []  # IDLE tasks to start, in order
        self._new_ids: set[str] = set()
        self._new_action_ids: set[str] = set()

    # -- bookkeeping --

    def touch(self, task: TaskView) -> None:
        if task.id not in self._new_ids:
            self.d.changed_tasks[task.id] = task

    def touch_action(self, action: ActionView) -> None:
        if action.id not in self._new_action_ids:
            self.d.changed_actions[action.id] = action

    def trace(self, kind: str, task: TaskView | None = None, info: str | None = None) -> None:
        self.d.trace.append(
            TraceEvent(kind, self.snap.id, task.id if task else None, task.name if task else None, info)
        )

    def set_task_state(self, task: TaskView, state: State, info: str | None = None) -> None:
        task.state = state
        task.state_info = info
        if state is State.RUNNING:
            task.started = True
        if state in TERMINAL:
            task.finished = True
        self.touch(task)
        if state in _TASK_EVENT:
            self.trace(_TASK_EVENT[state], task, info)

    def set_wf_state(self, state: State, info: str | None = None) -> None:
        self.snap.state = state
        self.snap.state_info = info
        self.d.workflow_changed = True
        if state in _WF_EVENT:
            self.trace(_WF_EVENT[state], info=info)

    def latest(self, name: str) -> TaskView | None:
        found = [t for t in self.snap.tasks if t.name == name]
        return max(found, key=lambda t: t.seq) if found else None

    def expr_ctx(self, current: TaskView | None) -> ExprContext:
        def lookup(name=None):
            if name is None:
                return current.view() if current else None
            t = self.latest(name)
            return t.view() if t else None

        return ExprContext(
            data=self.snap.context,
            task_lookup=lookup,
            execution={
                "id": self.snap.id,
                "name": self.snap.workflow_name,
                "input": self.snap.input,
                "params": self.snap.params,
                "state": self.snap.state,
            },
            env=self.snap.params.get("env") or {},
            limits=self.limits,
        )

    def oversized(self, value: Any, what: str) -> str | None:
        """Why ``value`` can not be stored as ``what``, or None when it can."""
        try:
            check_size(value, self.limits.field_size_bytes, what)
        except NotJson as exc:
            return str(exc)
        return None

    # -- tasks --

    def create_task(self, name: str, state: State) -> TaskView:
        task = TaskView(id=self.make_id(), name=name, state=State.IDLE, seq=self.snap.next_seq)
        self.snap.next_seq += 1
        self.snap.tasks.append(task)
        self._new_ids.add(task.id)
        self.d.new_tasks.append(task)
        if state is not State.IDLE:
            self.set_task_state(task, state, "Task is waiting." if state is State.WAITING else None)
        return task

    def schedule(self, name: str, from_task: str | None) -> None:
        tspec = self.spec.tasks[name]
        if tspec.join is None:
            self.ready.append(self.create_task(name, State.IDLE))
            return
        join = self.latest(name)
        if join is None or (join.state != State.WAITING and from_task in join.runtime_context.get("arrived", [])):
            join = self.create_task(name, State.WAITING)
        arrived = join.runtime_context.setdefault("arrived", [])
        if from_task not in arrived:
            arrived.append(from_task)
            self.touch(join)
        already_ready = any(r is join for r in self.ready)
        if join.state == State.WAITING and not already_ready and len(arrived) >= self.join_needed(tspec):
            join.state_info = None
            self.ready.append(join)

    def startable(self, task: TaskView) -> bool:
        if task.state == State.IDLE:
            return True
        tspec = self.spec.tasks[task.name]
        return task.state == State.WAITING and len(task.runtime_context.get("arrived", [])) >= self.join_needed(tspec)

    def join_needed(self, tspec: TaskSpec) -> int:
        if tspec.join == "all":
            return len(self.spec.inbound[tspec.name])
        if tspec.join == "one":
            return 1
        return int(tspec.join)

    def start_task(self, task: TaskView) -> None:
        tspec = self.spec.tasks[task.name]
        adef = actions.get(tspec.action)
        self.set_task_state(task, State.RUNNING)
        try:
            if adef is None:
                raise ExpressionError(f"unknown action '{tspec.action}'")
            action_input = adef.with_defaults(evaluate(tspec.input, self.expr_ctx(task)))
            problem = self.oversized(action_input, "the action input")
            if problem:
                raise ExpressionError(problem)
        except ExpressionError as exc:
            self.complete_task(task, State.ERROR, None, f"Failed to evaluate the action input: {exc}")
            return
        action = ActionView(
            id=self.make_id(), name=adef.name, state=State.RUNNING, input=action_input, is_sync=adef.is_sync
        )
        task.actions.append(action)
        self._new_action_ids.add(action.id)
        self.d.new_actions.append((task, action))
        if adef.kind == "local":
            try:
                result, state = adef.local(action_input), State.SUCCESS
            except actions.ActionFailed as exc:
                result, state = exc.error, State.ERROR
            self.finish_action(task, action, state, result)
        elif adef.needs_worker:
            self.d.dispatch.append(action.id)

    def finish_action(self, task: TaskView, action: ActionView, state: State, result: Any) -> None:
        try:
            result = to_json(result, max_depth=self.limits.max_depth, max_bytes=self.limits.field_size_bytes,
                             root="the result")
        except NotJson as exc:
            # Not stored: the row could not hold it, and a later step could not read it.
            state, result = State.ERROR, f"Action {action.name} returned a result that can not be stored: {exc}"
        action.state = state
        action.output = {"result": result}
        if state is State.ERROR:
            action.state_info = result if isinstance(result, str) else str(result)
        self.touch_action(action)
        if self.snap.state in TERMINAL:
            return
        self.complete_task(task, state, result, action.state_info)

    def complete_task(self, task: TaskView, state: State, result: Any, info: str | None) -> None:
        tspec = self.spec.tasks[task.name]
        task.result = result
        ctx = self.expr_ctx(task)
        publish = tspec.publish if state is State.SUCCESS else tspec.publish_on_error
        try:
            published = evaluate(publish, ctx) if publish else {}
            problem = self.oversized(published, "the published variables") or self.oversized(
                {**self.snap.context, **published}, "the workflow context with them"
            )
            if problem:
                raise ExpressionError(problem)
        except ExpressionError as exc:
            state, info, published = State.ERROR, f"Failed to evaluate 'publish': {exc}", {}
        try:
            keep = evaluate(tspec.keep_result, ctx)
        except ExpressionError:
            keep = True
        if keep is False:
            task.result = None
        task.published = published
        self.snap.context.update(published)
        self.set_task_state(task, state, info)
        self.follow_transitions(task, tspec)

    def follow_transitions(self, task: TaskView, tspec: TaskSpec) -> None:
        succeeded = task.state in (State.SUCCESS, State.SKIPPED)
        primary = tspec.on_success if succeeded else tspec.on_error
        ctx = self.expr_ctx(task)
        fired_primary = False
        for clause in (primary, tspec.on_complete):
            for tr in clause:
                try:
                    fire = self.condition_holds(tr, ctx)
                except ExpressionError as exc:
                    task.runtime_context["error_handled"] = False
                    self.set_task_state(task, State.ERROR, f"Failed to evaluate a transition condition: {exc}")
                    task.processed = True
                    return
                if not fire:
                    continue
                if clause is primary:
                    fired_primary = True
                if tr.is_command:
                    self.engine_command(task, tr, ctx)
                    if self.snap.state in TERMINAL:
                        task.processed = True
                        return
                else:
                    self.schedule(tr.target, task.name)
        if not succeeded:
            task.runtime_context["error_handled"] = fired_primary
        task.processed = True
        self.touch(task)

    @staticmethod
    def condition_holds(tr: Transition, ctx: ExprContext) -> bool:
        if tr.condition is None:
            return True
        return bool(evaluate(tr.condition, ctx))

    def engine_command(self, task: TaskView, tr: Transition, ctx: ExprContext) -> None:
        params = evaluate(tr.params, ctx) if tr.params else {}
        msg = params.get("msg")
        if tr.target == "fail":
            self.finish_workflow(State.ERROR, msg or f"Failed by 'fail' command in task '{task.name}'")
        elif tr.target == "succeed":
            self.finish_workflow(State.SUCCESS, msg)
        elif tr.target == "pause":
            self.set_wf_state(State.PAUSED, msg)

    # -- workflow --

    def active_tasks(self) -> list[TaskView]:
        return [t for t in self.snap.tasks if t.state in ACTIVE]

    def finish_workflow(self, state: State, info: str | None = None) -> None:
        ctx = self.expr_ctx(None)
        out_spec = self.spec.output if state is State.SUCCESS else self.spec.output_on_error
        try:
            self.snap.output = evaluate(out_spec, ctx) if out_spec is not None else {}
            problem = self.oversized(self.snap.output, "the workflow output")
            if problem:
                raise ExpressionError(problem)
        except ExpressionError as exc:
            state, info, self.snap.output = State.ERROR, f"Failed to evaluate the workflow output: {exc}", {}
        if not isinstance(self.snap.output, dict):
            self.snap.output = {"result": self.snap.output}
        self.cancel_active(f"Workflow ended in {state}")
        self.ready.clear()
        self.set_wf_state(state, info)

    def cancel_active(self, reason: str) -> None:
        for task in self.active_tasks():
            for action in task.actions:
                if action.state not in TERMINAL:
                    action.state = State.CANCELLED
                    action.state_info = reason
                    self.touch_action(action)
            self.set_task_state(task, State.CANCELLED, reason)

    def run(self) -> None:
        """Start ready tasks until quiescent, then decide whether the workflow is done."""
        while self.snap.state == State.RUNNING:
            while self.ready and self.snap.state == State.RUNNING:
                if self.out_of_steps():
                    # The ready tasks are stored IDLE (or WAITING, for a join);
                    # Continue picks them up, as Resume does.
                    self.d.more = True
                    return
                self.steps += 1
                self.start_task(self.ready.pop(0))
            if self.snap.state != State.RUNNING:
                break
            blocked = [t for t in self.active_tasks() if t.state != State.WAITING]
            if blocked:
                return  # something runs elsewhere; a later event continues
            waiting = [t for t in self.active_tasks() if t.state == State.WAITING]
            if waiting:
                for join in waiting:
                    self.complete_task(join, State.ERROR, None, "Join condition can not be satisfied: "
                                       "a task leading to it will not run")
                continue
            self.conclude()
            return

    def out_of_steps(self) -> bool:
        # At least one step per call, so every call makes progress.
        if not self.steps:
            return False
        limits = self.limits
        return bool(
            (limits.engine_steps and self.steps >= limits.engine_steps)
            or (limits.engine_seconds and self.clock() - self.started_at >= limits.engine_seconds)
        )

    def conclude(self) -> None:
        failed = [
            t for t in self.snap.tasks
            if t.state == State.ERROR and not t.runtime_context.get("error_handled", False)
        ]
        if failed:
            details = "\n".join(f"  {t.name} [task_ex_id={t.id}] -> {t.state_info}" for t in failed)
            names = ", ".join(t.name for t in failed)
            self.finish_workflow(State.ERROR, f"Failure caused by error in tasks: {names}\n\n{details}")
        else:
            self.finish_workflow(State.SUCCESS)

    # -- events --

    def apply(self, event: Event) -> None:
        snap = self.snap
        if isinstance(event, Start):
            if snap.state != State.IDLE:
                raise Conflict(f"Execution {snap.id} was already started", snap.state)
            try:
                snap.context = {**snap.input, **evaluate(self.spec.vars, self.expr_ctx(None))}
                problem = self.oversized(snap.context, "the workflow context (input and vars)")
                if problem:
                    raise ExpressionError(problem)
            except ExpressionError as exc:
                self.set_wf_state(State.RUNNING)
                self.trace("WORKFLOW_LAUNCHED")
                self.finish_workflow(State.ERROR, f"Failed to evaluate 'vars': {exc}")
                return
            self.set_wf_state(State.RUNNING)
            self.trace("WORKFLOW_LAUNCHED")
            for name in self.spec.start_tasks:
                self.schedule(name, None)
            self.run()
        elif isinstance(event, ActionCompleted):
            task, action = self.find_action(event.action_id)
            if action.state != State.RUNNING:
                raise Conflict(f"Action execution {action.id} is not RUNNING but {action.state}", action.state)
            if event.state not in (State.SUCCESS, State.ERROR):
                raise ValueError(f"an action completes in SUCCESS or ERROR, not {event.state}")
            self.finish_action(task, action, State(event.state), event.result)
            self.run()
        elif isinstance(event, Pause):
            if snap.state != State.RUNNING:
                raise Conflict(f"Can not pause execution {snap.id} in state {snap.state}", snap.state)
            self.set_wf_state(State.PAUSED, event.reason)
        elif isinstance(event, Resume):
            if snap.state != State.PAUSED:
                raise Conflict(f"Can not resume execution {snap.id} in state {snap.state}", snap.state)
            self.set_wf_state(State.RUNNING)
            self.trace("WORKFLOW_RESUMED")
            self.run_scheduled()
        elif isinstance(event, Continue):
            if snap.state == State.RUNNING:
                self.run_scheduled()
        elif isinstance(event, (RerunTask, SkipTask)):
            self.operator_fix(event)
        elif isinstance(event, Cancel):
            if snap.state in TERMINAL:
                raise Conflict(f"Execution {snap.id} is already {snap.state}", snap.state)
            self.cancel_active("Workflow was cancelled")
            self.set_wf_state(State.CANCELLED, event.reason)

    def run_scheduled(self) -> None:
        # Tasks scheduled but not started (while paused, or past the step
        # limit): IDLE ones, and joins whose arrivals suffice.
        self.ready = [t for t in sorted(self.snap.tasks, key=lambda t: t.seq) if self.startable(t)]
        self.run()

    def operator_fix(self, event: RerunTask | SkipTask) -> None:
        task = next((t for t in self.snap.tasks if t.id == event.task_id), None)
        if task is None:
            raise KeyError(event.task_id)
        done = "rerun" if isinstance(event, RerunTask) else "skipped"
        if State(task.state) not in OPERATOR_TRANSITIONS:
            raise Conflict(f"Only a task in ERROR can be {done}; {task.name} is {task.state}", task.state)
        if self.snap.state not in (State.RUNNING, State.ERROR, State.PAUSED):
            raise Conflict(f"Execution {self.snap.id} is {self.snap.state}", self.snap.state)
        if self.snap.state == State.ERROR:
            self.set_wf_state(State.RUNNING)
            self.trace("WORKFLOW_RERUN")
        task.runtime_context.pop("error_handled", None)
        task.finished = False
        if isinstance(event, RerunTask):
            self.trace("TASK_RERUN", task)
            self.ready.append(task)
        else:
            task.result = None
            self.set_task_state(task, State.SKIPPED, "Skipped by an operator")
            self.follow_transitions(task, self.spec.tasks[task.name])
        if self.snap.state == State.RUNNING:
            self.run()

    def find_action(self, action_id: str) -> tuple[TaskView, ActionView]:
        for task in self.snap.tasks:
            for action in task.actions:
                if action.id == action_id:
                    return task, action
        raise KeyError(action_id)


def handle(
    spec: WorkflowSpec,
    snapshot: Snapshot,
    event: Event,
    make_id: Callable[[], str] = new_id,
    limits: Limits = DEFAULT,
    clock: Callable[[], float] = time.monotonic,
) -> Decision:
    """Apply ``event`` to a copy of ``snapshot`` and return what changed.

    Raises :class:`Conflict` when the event does not apply in the current
    state; the caller's snapshot is never modified. ``Decision.more`` asks
    the caller to send :class:`Continue` once this decision is stored.
    """
    run = _Run(spec, copy.deepcopy(snapshot), make_id, limits, clock)
    run.apply(event)
    return run.d


def check_input(spec: WorkflowSpec, given: dict) -> tuple[dict, dict[str, str]]:
    """Workflow input with defaults filled in, and the errors by input name
    (unexpected ones first, then missing ones), so a form can show each on its field."""
    names = [n for n, _ in spec.input]
    errors = {k: f"unexpected input '{k}'" for k in given if k not in names}
    errors |= {n: f"missing required input '{n}'" for n, d in spec.input if d is actions.REQUIRED and n not in given}
    values = {n: d for n, d in spec.input if d is not actions.REQUIRED}
    values.update(given)
    return values, errors
