"""The pure workflow engine: (spec, execution, store, event) -> decision.

No Django, no I/O. ``handle()`` applies one event to one execution, runs
every engine-local step that follows (``std.noop``/``std.echo``/``std.fail``
results, transitions, joins, engine commands, policies) until nothing more
can happen without the outside world, and returns a :class:`Decision`: the
task and action executions that are new or changed, the **commands** the
caller carries out after it stored them (:class:`RunAction` for a worker,
:class:`StartTimer`/:class:`CancelTimers` for durable waits), and the trace
events to log.

Its cost per event does not grow with the execution. The engine holds the
execution's counters (tasks per active state, unhandled errors, the
context of the tasks that ended a branch) in ``Snapshot.runtime`` and asks a
:class:`Store` for the few task executions an event needs: the one whose
action completed, the latest execution of a task a transition leads to, the
IDLE ones on resume. Nothing is copied per event; the caller gives a fresh
snapshot per call (the service builds one from rows inside the transaction
that holds the execution's lock, and a Conflict rolls it back).

Data flow is Mistral's: a task's inbound context is the outbound context
(inbound + published) of the task that led to it, merged at joins; an
expression sees that context first, then the execution's context (``vars``
and ``global`` publishes), then the workflow input. A workflow without
``output`` outputs the merged outbound contexts of the tasks that ended a
branch.

Everything a workflow controls is bounded by the :class:`Limits` the caller
passes: after ``limits.engine_steps`` tasks started in one call (or
``limits.engine_seconds`` spent on them), ``handle`` stops with
``Decision.more`` set and the caller continues with a :class:`Continue`
event in a new transaction; a result, the published variables, the context
or the output larger than the field size limit ends the task (or workflow)
in ERROR with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core import actions, adhoc, policies
from core.lang.expressions import ExprContext, ExpressionError, evaluate
from core.lang.limits import DEFAULT, Limits
from core.lang.spec import TaskSpec, Transition, WorkflowSpec, merge_dicts
from core.lang.values import NotJson, check_size, to_json
from core.model import (
    ActionCompleted,
    ActionView,
    Cancel,
    CancelTimers,
    Command,
    Conflict,
    Continue,
    Decision,
    Event,
    InvalidateResults,
    MemoryStore,
    Missing,
    Pause,
    RerunTask,
    Resume,
    RunAction,
    SkipTask,
    Snapshot,
    Start,
    StartTimer,
    StartWorkflow,
    StopWorkflow,
    Store,
    TaskView,
    TimerFired,
    TraceEvent,
    new_id,
    new_runtime,
)
from core.states import ACTIVE, OPERATOR_TRANSITIONS, TERMINAL, State

# The data handle() takes and returns is defined in core.model; callers name it through the engine.
__all__ = [
    "handle",
    "check_input",
    "ActionCompleted",
    "ActionView",
    "Cancel",
    "CancelTimers",
    "Command",
    "Conflict",
    "Continue",
    "Decision",
    "Event",
    "InvalidateResults",
    "MemoryStore",
    "Missing",
    "Pause",
    "RerunTask",
    "Resume",
    "RunAction",
    "SkipTask",
    "Snapshot",
    "Start",
    "StartTimer",
    "StartWorkflow",
    "StopWorkflow",
    "Store",
    "TaskView",
    "TimerFired",
    "TraceEvent",
    "new_id",
    "new_runtime",
]

_TASK_EVENT = {
    State.WAITING: "TASK_WAITING",
    State.RUNNING: "TASK_RUNNING",
    State.RUNNING_DELAYED: "TASK_DELAYED",
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
_STATE_COMMANDS = {"fail": State.ERROR, "succeed": State.SUCCESS, "pause": State.PAUSED}
ARRIVALS = "arrivals"  # a join's runtime_context: which inbound tasks arrived, a hex bit mask


WITH_ITEMS = policies.WITH_ITEMS  # a with-items task's runtime_context: count, next index, running, done, errors


@dataclass
class _Unit:
    """What one action or sub-workflow execution of a task will run."""

    kind: str  # "action" | "workflow"
    name: str
    input: dict
    adef: actions.ActionDef | None = None
    params: dict = field(default_factory=dict)  # a sub-workflow's
    problem: str | None = None  # the task fails with it (on-error applies)
    run: adhoc.Plan | None = None  # an action's: what runs (an ad-hoc action's base and its input)

    @property
    def run_input(self) -> dict:
        return self.run.run_input if self.run else self.input


@dataclass(frozen=True)
class _Next:
    """One transition that fired: a task to run or an engine command."""

    target: str
    params: dict
    event: str  # on-success | on-error | on-complete | on-skip

    @property
    def is_command(self) -> bool:
        return self.target in _STATE_COMMANDS or self.target == "noop"


class _Run:
    """One ``handle()`` call: the tasks it touched and what changed."""

    def __init__(
        self,
        spec: WorkflowSpec,
        snap: Snapshot,
        store: Store,
        make_id: Callable[[], str],
        limits: Limits = DEFAULT,
        clock: Callable[[], float] = time.monotonic,
        lookup: adhoc.Lookup | None = None,
    ):
        self.spec = spec
        self.lookup = lookup
        self.snap = snap
        self.store = store
        self.make_id = make_id
        self.limits = limits
        self.clock = clock
        self.started_at = clock()
        self.steps = 0
        rt = snap.runtime
        for key, value in new_runtime().items():
            rt.setdefault(key, value)
        self.rt = rt
        self.d = Decision(snapshot=snap)
        self.ready: list[TaskView] = []  # tasks to start, in order
        self.tasks: dict[str, TaskView] = {}
        self._latest: dict[str, TaskView | None] = {}
        self._new_ids: set[str] = set()
        self._new_action_ids: set[str] = set()
        self._filling: set[str] = set()  # with-items tasks whose start loop runs
        self._fresh: dict[str, set[str]] = {}  # task id -> units started since its results were invalidated
        self._dropped: set[str] = set()  # units a rerun with reset false no longer accepts (stored after this call)

    # -- reading tasks --

    def adopt_found(self, task: TaskView | None) -> TaskView | None:
        return None if task is None else self.adopt(task)

    def adopt(self, task: TaskView) -> TaskView:
        """The one view of a task in this call: a task loaded twice (by id,
        then as the latest of its name) is the same object."""
        known = self.tasks.get(task.id)
        if known is not None:
            return known
        task.spec = self.spec.raw.get("tasks", {}).get(task.name, {})
        self.tasks[task.id] = task
        return task

    def latest(self, name: str) -> TaskView | None:
        if name not in self._latest:
            self._latest[name] = self.adopt_found(self.store.latest(name))
        return self._latest[name]

    def load(self, task_id: str) -> TaskView:
        task = self.tasks.get(task_id) or self.adopt_found(self.store.task(task_id))
        if task is None:
            raise Missing("Task execution", task_id)
        return task

    def in_states(self, states: frozenset[str]) -> list[TaskView]:
        found = {t.id: t for t in map(self.adopt, self.store.in_states(states))}
        found.update({t.id: t for t in self.tasks.values()})
        return sorted((t for t in found.values() if t.state in states), key=lambda t: t.seq)

    # -- bookkeeping --

    def touch(self, task: TaskView) -> None:
        if task.id not in self._new_ids:
            self.d.changed_tasks[task.id] = task

    def touch_action(self, action: ActionView) -> None:
        if action.id not in self._new_action_ids:
            self.d.changed_actions[action.id] = action

    def command(self, cmd: Command) -> None:
        self.d.commands.append(cmd)

    def trace(self, kind: str, task: TaskView | None = None, info: str | None = None) -> None:
        self.d.trace.append(
            TraceEvent(kind, self.snap.id, task.id if task else None, task.name if task else None, info)
        )

    def set_task_state(self, task: TaskView, state: State, info: str | None = None, old: str | None = None) -> None:
        counts = self.rt["counts"]
        before = task.state if old is None else old
        if before in ACTIVE:
            counts[before] = counts.get(before, 0) - 1
            if not counts[before]:
                del counts[before]
        if state in ACTIVE:
            counts[state] = counts.get(state, 0) + 1
        task.state = state
        task.state_info = info
        if state is State.RUNNING:
            task.started = True
        task.finished = state in TERMINAL
        self.touch(task)
        if state in _TASK_EVENT:
            self.trace(_TASK_EVENT[state], task, info)

    def set_wf_state(self, state: State, info: str | None = None) -> None:
        self.snap.state = state
        self.snap.state_info = info
        self.d.workflow_changed = True
        if state in _WF_EVENT:
            self.trace(_WF_EVENT[state], info=info)

    def execution_view(self) -> dict:
        return {
            "id": self.snap.id,
            "name": self.snap.workflow_name,
            "spec": self.spec.raw,
            "input": self.snap.input,
            "params": self.snap.params,
            "root_execution_id": self.snap.root_execution_id,
            "created_at": self.snap.created_at,
            "updated_at": self.snap.updated_at,
        }

    def expr_ctx(self, current: TaskView | None, data: dict | None = None) -> ExprContext:
        """What an expression sees: ``data`` (a task's context) over the
        execution's context (vars, global publishes) over the input."""

        def lookup(name=None):
            if name is None:
                return current.view() if current else None
            t = self.latest(name)
            return t.view() if t else None

        def tasks_lookup(state=None, flat=False, recursive=False):
            every = {t.id: t for t in map(self.adopt, self.store.all_tasks())}
            every.update(self.tasks)
            found = [t.view() for t in sorted(every.values(), key=lambda t: t.seq)]
            if recursive:  # Mistral's: the tasks of its sub-workflows too, depth first
                found += self.store.descendant_tasks()
            return [t for t in found if state is None or t["state"] == state]

        merged = {**self.snap.input, **self.snap.context, **(data or {})}
        return ExprContext(
            data=merged,
            task_lookup=lookup,
            tasks_lookup=tasks_lookup,
            global_data=self.snap.context,
            execution=self.execution_view(),
            env=self.env(),
            limits=self.limits,
        )

    def task_ctx(self, task: TaskView, outbound: bool = False) -> ExprContext:
        return self.expr_ctx(task, task.outbound() if outbound else task.in_context)

    def oversized(self, value: Any, what: str) -> str | None:
        """Why ``value`` can not be stored as ``what``, or None when it can."""
        try:
            check_size(value, self.limits.field_size_bytes, what)
        except NotJson as exc:
            return str(exc)
        return None

    # -- tasks --

    def create_task(self, name: str, state: State, in_context: dict) -> TaskView:
        seq = self.rt["seq"]
        self.rt["seq"] = seq + 1
        # result []: Mistral's result of a task with no action execution yet
        task = TaskView(id=self.make_id(), name=name, state="", seq=seq, result=[], in_context=dict(in_context))
        task.spec = self.spec.raw.get("tasks", {}).get(name, {})
        self.tasks[task.id] = task
        self._latest[name] = task
        self._new_ids.add(task.id)
        self.d.new_tasks.append(task)
        self.set_task_state(task, state, "Task is waiting." if state is State.WAITING else None)
        return task

    def schedule(self, name: str, from_task: TaskView | None) -> None:
        tspec = self.spec.tasks[name]
        if self.spec.reverse:
            self.schedule_required(tspec)
            return
        inbound = from_task.outbound() if from_task else {}
        if tspec.join is None:
            self.ready.append(self.create_task(name, State.IDLE, inbound))
            return
        bit = self.inbound_bit(name, from_task.name if from_task else None)
        join = self.latest(name)
        if join is None or (join.state != State.WAITING and self.arrived(join) & bit):
            join = self.create_task(name, State.WAITING, {})
        arrived = self.arrived(join)
        if not arrived & bit:
            # One bit per inbound task name, in the order of spec.inbound: a
            # join of 5,000 branches stores 1,250 hex digits, not 5,000 names.
            join.runtime_context[ARRIVALS] = format(arrived | bit, "x")
            join.in_context = merge_dicts(join.in_context, inbound)
            self.touch(join)
        if self.startable(join) and not any(r is join for r in self.ready):
            self.ready.append(join)

    def schedule_required(self, tspec: TaskSpec) -> None:
        """A reverse workflow's task starts once, when every task it
        requires succeeded, with their outbound contexts merged."""
        if self.latest(tspec.name) is not None:
            return
        required = [self.latest(r) for r in tspec.requires]
        if any(t is None or t.state != State.SUCCESS for t in required):
            return
        inbound: dict = {}
        for t in required:
            inbound = merge_dicts(inbound, t.outbound())  # type: ignore[union-attr]
        self.ready.append(self.create_task(tspec.name, State.IDLE, inbound))

    def inbound_bit(self, name: str, from_name: str | None) -> int:
        index = self.spec.inbound_index[name]
        return 1 << index.get(from_name or "", len(index))

    def arrived(self, join: TaskView) -> int:
        """The join's arrivals as a bit mask; a join stored before the mask
        (a list of names) is converted on the way."""
        rc = join.runtime_context
        if "arrived" in rc:
            index = self.spec.inbound_index[join.name]
            rc[ARRIVALS] = format(sum(1 << index[n] for n in rc.pop("arrived") if n in index), "x")
        return int(rc.get(ARRIVALS) or "0", 16)

    def startable(self, task: TaskView) -> bool:
        if task.state == State.IDLE:
            return True
        if task.state != State.WAITING or task.runtime_context.get(policies.DELAYED):
            return False
        return self.arrived(task).bit_count() >= self.join_needed(self.spec.tasks[task.name])

    def join_needed(self, tspec: TaskSpec) -> int:
        if tspec.join == "all":
            return len(self.spec.inbound[tspec.name])
        if tspec.join == "one":
            return 1
        return int(tspec.join or 0)

    def start_task(self, task: TaskView) -> None:
        """Start a task that is ready: its policies first (which may pause
        the workflow or delay the task on a timer), then its action."""
        if task.state in TERMINAL:
            return
        if task.state == State.RUNNING_DELAYED or task.runtime_context.get(policies.DELAYED):
            policies.fire(self, task, "retry")  # a retry without delay: no policy runs twice
            return
        self.set_task_state(task, State.RUNNING, None)
        if policies.before_start(self, task):
            self.run_action(task)

    def run_action(self, task: TaskView) -> None:
        """A new action (or sub-workflow) execution for the task, or one per
        item of ``with-items``: its first run, a retry, or a rerun."""
        tspec = self.spec.tasks[task.name]
        if task.state != State.RUNNING:
            self.set_task_state(task, State.RUNNING, None)
        if tspec.with_items:
            self.run_items(task)
            return
        try:
            unit = self.prepare(task, task.in_context)
        except ExpressionError as exc:
            self.force_fail(task, self.run_failure(task, exc))
            return
        self.launch(task, unit)

    def prepare(self, task: TaskView, data: dict) -> _Unit:
        """What the task runs over ``data`` (its context, or an item's):
        the action or workflow name and input, evaluated and checked. An
        ExpressionError fails the task and the workflow ("Failed to run
        task"); a ``problem`` fails only the task, as Mistral's schedule()."""
        tspec = self.spec.tasks[task.name]
        ctx = self.expr_ctx(task, data)
        name = evaluate(tspec.action, ctx) if tspec.action_is_expression else tspec.action
        what = "workflow" if tspec.workflow is not None else "action"
        if not isinstance(name, str) or not name:
            raise ExpressionError(f"the {what} name must be a string, got {name!r}")
        given = evaluate(tspec.input, ctx)
        if not isinstance(given, dict):
            raise ExpressionError(
                f"Wrong dynamic input for task: {task.name}. Dict type is expected. "
                f"Actual type: {type(given).__name__}. Actual value: {given!r}"
            )
        if tspec.workflow is not None:
            return self.prepare_workflow(name, given)
        namespace = self.snap.params.get("namespace", "")
        adef = adhoc.find(name, namespace, self.rt.get("wb_name"), self.lookup)
        if adef is None:
            raise ExpressionError(f"Failed to find action [action_name={name}, namespace={namespace}]")
        plan = adhoc.plan(
            adef, given, namespace, self.lookup, ctx, check=tspec.action_is_expression or isinstance(tspec.input, str)
        )
        problem = self.oversized(plan.input, "the action input") or self.oversized(plan.run_input, "the input")
        if problem:
            raise ExpressionError(problem)
        return _Unit("action", plan.name, plan.input, adef=plan.action, run=plan)

    def prepare_workflow(self, name: str, given: dict) -> _Unit:
        """A sub-workflow as Mistral's WorkflowAction.schedule starts it: the
        keys its input does not declare become its params; the root's
        namespace and environment go down to it."""
        namespace = self.snap.params.get("namespace", "")
        child = self.store.workflow(name)
        if child is None:
            problem = f"Failed to find workflow [name={name}] [namespace={namespace}]"
            return _Unit("workflow", name, given, problem=problem)
        depth = int(self.rt.get("depth", 0)) + 1
        if depth > self.limits.subworkflow_depth:
            return _Unit(
                "workflow",
                name,
                given,
                problem=(
                    f"Failed to start sub-workflow {name}: it would run {depth} levels below the root execution, "
                    f"more than the limit of {self.limits.subworkflow_depth} (GUST_SUBWORKFLOW_MAX_DEPTH)"
                ),
            )
        declared = {n for n, _ in child.input}
        wf_input = {k: v for k, v in given.items() if k in declared}
        params = {k: v for k, v in given.items() if k not in declared}
        missing = [n for n, d in child.input if d is actions.REQUIRED and n not in wf_input]
        if missing:
            return _Unit(
                "workflow",
                name,
                given,
                problem=(f"Invalid input [name={child.name}, class={child.kind_name}, missing={missing!r}]"),
            )
        if child.reverse and params.get("task_name") not in child.tasks:
            return _Unit(
                "workflow",
                name,
                given,
                problem=(f"Invalid task name [wf_spec={child.name}, task_name={params.get('task_name')}]"),
            )
        values, _ = check_input(child, wf_input)
        too_big = self.oversized(values, "the sub-workflow input")
        if too_big:
            raise ExpressionError(too_big)
        params.setdefault("namespace", namespace)
        params["env"] = self.env()
        if "notify" in self.snap.params:  # Mistral's: the child notifies the same publishers
            params["notify"] = self.snap.params["notify"]
        return _Unit("workflow", name, values, params=params)

    def env(self) -> dict:
        return self.snap.params.get("env") or {}

    def launch(self, task: TaskView, unit: _Unit, index: int | None = None) -> None:
        """Start the unit: a local action ends in this step, a worker or an
        async action and a sub-workflow end with a later ActionCompleted."""
        if unit.problem:
            self.complete_task(task, State.ERROR, [], unit.problem)
            return
        adef = unit.adef
        view = ActionView(
            id=self.make_id(),
            name=unit.name,
            state=State.RUNNING,
            input=unit.input,
            is_sync=adef.is_sync if adef else False,
            index=index,
            kind=unit.kind,
            runtime_context=dict(unit.run.runtime_context) if unit.run else {},
        )
        task.actions.append(view)
        self._new_action_ids.add(view.id)
        if task.id in self._fresh:
            self._fresh[task.id].add(view.id)
        self.d.new_actions.append((task, view))
        self.touch(task)
        if adef is None:
            self.command(StartWorkflow(view.id, task.id, unit.name, unit.input, {**unit.params, "index": index or 0}))
            return
        problems = adef.validate(unit.run_input) if adef.validate else []
        if problems:
            self.finish_action(task, view, State.ERROR, f"{adef.name}: {'; '.join(problems)}")
        elif adef.kind == "local" and adef.local is not None:
            try:
                result, state = adef.local(unit.run_input), State.SUCCESS
            except actions.ActionFailed as exc:
                result, state = exc.error, State.ERROR
            except actions.ActionRaised as exc:
                result, state = (
                    (f"The action raised an exception [action={exc.label}, action_ex_id={view.id}, msg='{exc.msg}']"),
                    State.ERROR,
                )
            self.finish_action(task, view, state, result)
        elif adef.needs_worker:
            self.command(RunAction(view.id))

    # -- with-items --

    def run_items(self, task: TaskView) -> None:
        """Start a with-items task: count its items, then start as many as
        its concurrency allows (all of them without one)."""
        rc = task.runtime_context
        if "redo" in rc.get(WITH_ITEMS, {}):  # a rerun with reset false: the counters go on
            self.touch(task)
            self.fill(task)
            return
        try:
            values = self.item_values(task)
        except ExpressionError as exc:
            self.force_fail(task, self.run_failure(task, exc))
            return
        count = len(next(iter(values.values())))
        rc[WITH_ITEMS] = {"count": count, "next": 0, "running": 0, "done": 0, "errors": 0, "cancelled": 0}
        # Stored once, so starting more items later reads them instead of
        # evaluating the expression again (Mistral does, at O(items) per event).
        task.items, task.items_new = values, True
        self.touch(task)
        self.fill(task)

    def item_values(self, task: TaskView) -> dict[str, list]:
        """Each with-items variable's list, evaluated in the task's context
        (Mistral evaluates it again each time it starts more items)."""
        ctx = self.task_ctx(task)
        values: dict[str, list] = {}
        for var, raw in self.spec.tasks[task.name].with_items:
            value = evaluate(raw, ctx)
            if isinstance(value, (str, dict)):
                value = list(value)  # Mistral's list(items): a string's characters, a mapping's keys
            if not isinstance(value, list):
                raise ExpressionError(
                    f"Wrong input format for: {task.name}.with-items.{var}: {type(value).__name__} {value!r}. "
                    f"Iterable type is expected for each value."
                )
            values[var] = value
        lengths = {var: len(v) for var, v in values.items()}
        if len(set(lengths.values())) > 1:
            raise ExpressionError(
                f"Wrong input format for: {task.name}.with-items {lengths}. All arrays must have the same length."
            )
        return values

    def fill(self, task: TaskView) -> None:
        """Start items while the concurrency allows, then end the task when
        every item ended. A local action ends inside ``launch`` and calls
        back here; the loop further up goes on, so there is no recursion."""
        wi = task.runtime_context[WITH_ITEMS]
        concurrency = task.runtime_context.get(policies.CONCURRENCY) or 0
        if task.id in self._filling:
            return
        self._filling.add(task.id)
        values = task.items
        redo = wi.get("redo") or []
        try:
            while (
                task.state == State.RUNNING
                and (redo or wi["next"] < wi["count"])
                and (not concurrency or wi["running"] < concurrency)
            ):
                if values is None:
                    values = task.items = self.store.items(task.id) or self.item_values(task)
                i = redo[0] if redo else wi["next"]
                data = merge_dicts({var: items[i] for var, items in values.items()}, task.in_context)
                unit = self.prepare(task, data)
                if redo:
                    redo.pop(0)
                else:
                    wi["next"] += 1
                wi["running"] += 1
                self.launch(task, unit, index=i)
        except ExpressionError as exc:
            self.force_fail(task, self.run_failure(task, exc))
            return
        finally:
            self._filling.discard(task.id)
        self.items_end(task)

    def invalidate(self, task: TaskView) -> None:
        """Mistral's invalidate_result: the task's executions so far no
        longer count (a retry, a rerun); a with-items task starts over."""
        for a in task.actions:
            if a.accepted:
                a.accepted = False
                self.touch_action(a)
        task.runtime_context.pop(WITH_ITEMS, None)
        self._fresh[task.id] = set()
        self.command(InvalidateResults(task.id))

    def keep_items(self, task: TaskView, wi: dict) -> None:
        """Mistral's rerun with reset false (``_reset_actions`` and
        WithItemsTask ``_get_next_indexes``): the items that succeeded keep
        their results; the failed, cancelled and never started ones run again."""
        kept: set[int] = set()
        dropped: list[str] = []
        for a in self.store.actions_of(task.id):
            if a.accepted and a.state in (State.ERROR, State.CANCELLED):
                a.accepted = False  # (a copy of the row, or the view itself in a memory store)
                dropped.append(a.id)
            elif a.accepted and a.index is not None:
                kept.add(a.index)
        self._dropped.update(dropped)
        wi.update(
            redo=[i for i in range(wi["next"]) if i not in kept], running=0, done=len(kept), errors=0, cancelled=0
        )
        task.runtime_context[WITH_ITEMS] = wi
        if dropped:
            self.command(InvalidateResults(task.id, tuple(dropped)))

    def item_done(self, task: TaskView, state: State) -> None:
        wi = task.runtime_context[WITH_ITEMS]
        wi["running"] -= 1
        wi["done"] += 1
        if state is State.ERROR:
            wi["errors"] += 1
        elif state is State.CANCELLED:
            wi["cancelled"] += 1
        self.touch(task)
        self.fill(task)

    def items_end(self, task: TaskView) -> None:
        """Mistral's WithItemsTask: the task ends once every item ended, in
        ERROR when one failed (the others still ran), with the results in
        item order."""
        wi = task.runtime_context.get(WITH_ITEMS)
        if wi is None or task.state != State.RUNNING or wi["running"] or wi["next"] < wi["count"] or wi.get("redo"):
            return
        state = State.CANCELLED if wi["cancelled"] else State.ERROR if wi["errors"] else State.SUCCESS
        info = {
            State.SUCCESS: None,
            State.ERROR: "One or more actions had failed.",
            State.CANCELLED: "One or more actions was cancelled.",
        }[state]
        self.complete_task(task, state, self.item_results(task), info)

    def item_results(self, task: TaskView) -> list:
        if not task.runtime_context[WITH_ITEMS]["count"]:
            return []
        units = {a.id: a for a in self.store.actions_of(task.id)}
        units.update({a.id: a for a in task.actions})
        if task.id in self._fresh:  # the stored rows are invalidated only once this decision is stored
            units = {i: a for i, a in units.items() if i in self._fresh[task.id]}
        done = sorted(
            (a for a in units.values() if a.accepted and a.index is not None and a.id not in self._dropped),
            key=lambda a: a.index or 0,
        )
        return [(a.output or {}).get("result") for a in done]

    def finish_action(
        self, task: TaskView, action: ActionView, state: State, result: Any, info: str | None = None
    ) -> None:
        try:
            if state is State.SUCCESS and adhoc.KEY in action.runtime_context:
                result = adhoc.transform(action.runtime_context[adhoc.KEY], result, self.limits)
        except ExpressionError as exc:
            state, result = State.ERROR, f"Failed to transform the result of {action.name}: {exc}"
        try:
            result = to_json(
                result, max_depth=self.limits.max_depth, max_bytes=self.limits.field_size_bytes, root="the result"
            )
        except NotJson as exc:
            # Not stored: the row could not hold it, and a later step could not read it.
            state, result = State.ERROR, f"Action {action.name} returned a result that can not be stored: {exc}"
        action.state = state
        action.accepted = True
        action.output = {"result": result}
        if info is not None:
            action.state_info = info
        elif state is State.ERROR:
            action.state_info = result if isinstance(result, str) else str(result)
        self.touch_action(action)
        if task.state in TERMINAL or task.state == State.RUNNING_DELAYED:
            return  # the task ended without it (timed out) or waits for a retry
        if WITH_ITEMS in task.runtime_context:
            self.item_done(task, state)
            return
        if info is None and state is not State.SUCCESS and result not in (None, ""):
            info = action.state_info
        self.complete_task(task, state, result, None if state is State.SUCCESS else info)

    def run_failure(self, task: TaskView, error: Any) -> str:
        """Mistral's text for an error while starting a task (its action's
        name or input, a policy): the task and the workflow fail with it."""
        return f"Failed to run task [error={error}, wf={self.snap.workflow_name}, task={task.name}]:"

    def completion_failure(self, task: TaskView, error: Any) -> str:
        """Mistral's text for an error while handling a task's end (publish, a
        transition condition, a policy)."""
        action = task.actions[-1].name if task.actions else self.spec.tasks[task.name].action
        return (
            f"Failed to handle action completion [error={error}, wf={self.snap.workflow_name}, "
            f"task={task.name}, action={action}]:"
        )

    def force_fail(self, task: TaskView, msg: str) -> None:
        """An error in the workflow's own text, not in an action: the task
        fails and so does the workflow, with no on-error, as Mistral's
        force_fail_task (unless the workflow is paused or ended)."""
        self.set_task_state(task, State.ERROR, msg)
        task.processed = True
        task.runtime_context["error_handled"] = False
        self.rt["errors"] += 1
        if self.snap.state == State.RUNNING:
            self.finish_workflow(State.ERROR, msg)

    def complete_task(
        self, task: TaskView, state: State, result: Any, info: str | None, *, again: bool = False
    ) -> None:
        """The task ends in ``state``: publish, apply the policies that act
        on completion (which may delay it: wait-after, retry), then follow
        its transitions. ``again``: a wait-after delay is over."""
        tspec = self.spec.tasks[task.name]
        if not again:
            task.result = result
        before = task.state
        task.state, task.state_info = state, info  # task() in publish sees how it ends
        published: dict[str, Any] = {}
        global_vars: dict[str, Any] = {}
        ctx = self.task_ctx(task)
        try:
            pub = tspec.publish_for(state)
            published = evaluate(pub.branch, ctx) if pub.branch else {}
            global_vars = evaluate(pub.global_, ctx) if pub.global_ else {}
            problem = self.oversized(published, "the published variables") or self.oversized(
                merge_dicts(self.snap.context, global_vars), "the workflow context with them"
            )
            if problem:
                raise ExpressionError(problem)
        except ExpressionError as exc:
            task.state = before
            self.force_fail(task, self.completion_failure(task, exc))
            return
        try:
            keep = evaluate(tspec.keep_result, ctx)
        except ExpressionError:
            keep = True
        if keep is False:
            task.result = None
        task.published = published
        if global_vars:
            self.snap.context = merge_dicts(self.snap.context, global_vars)
            self.d.workflow_changed = True
        self.set_task_state(task, state, info, old=before)
        if state is not State.SKIPPED and not policies.after_complete(self, task):
            return
        self.process(task)

    def process(self, task: TaskView) -> None:
        """Decide what follows the ended task, as Mistral's task completion
        does: nothing while the workflow is paused (the task stays
        unprocessed until resume), no transitions once it ended."""
        if task.runtime_context.get(policies.TIMEOUT):
            self.command(CancelTimers(task.id, ("timeout",)))
        if self.snap.state == State.PAUSED:
            if task.id not in self.rt["pending"]:
                self.rt["pending"].append(task.id)
            return
        if self.snap.state in TERMINAL:
            task.processed = True
            self.touch(task)
            return
        try:
            fired = self.next_of(task)
        except ExpressionError as exc:
            self.force_fail(task, self.completion_failure(task, exc))
            return
        if task.state == State.ERROR:
            handled = any(n.event == "on-error" for n in fired)
            task.runtime_context["error_handled"] = handled
            if not handled:
                self.rt["errors"] += 1
        if task.state == State.CANCELLED:
            self.rt["cancelled"] = self.rt.get("cancelled", 0) + 1
        if not any(not n.is_command for n in fired):
            self.rt["end"] = merge_dicts(self.rt["end"], task.outbound())
        task.processed = True
        self.touch(task)
        self.follow(task, fired)

    def next_of(self, task: TaskView) -> list[_Next]:
        """The transitions that fire for the task's end state, in Mistral's
        order: on-error, on-skip (or on-success when a skipped task has
        none), on-success, then on-complete."""
        tspec = self.spec.tasks[task.name]
        ctx = self.task_ctx(task, outbound=True)
        state = task.state

        def fire(clause: Iterable[Transition], event: str) -> list[_Next]:
            out = []
            for tr in clause:
                if tr.condition is None or evaluate(tr.condition, ctx):
                    params = evaluate(tr.params, ctx) if tr.params else {}
                    out.append(_Next(tr.target, params if isinstance(params, dict) else {}, event))
            return out

        found: list[_Next] = []
        if state == State.ERROR:
            found += fire(tspec.on_error, "on-error")
        skipped_without = False
        if state == State.SKIPPED:
            found += fire(tspec.on_skip, "on-skip")
            skipped_without = not found
        if state == State.SUCCESS or skipped_without:
            found += fire(tspec.on_success, "on-success")
        if state in (State.SUCCESS, State.ERROR):
            found += fire(tspec.on_complete, "on-complete")
        return found

    def follow(self, task: TaskView, fired: list[_Next]) -> None:
        """Carry out the fired transitions as Mistral's dispatcher does: a
        ``fail`` or ``succeed`` first drops everything after it, tasks named
        before it still run; the transitions after a ``pause`` wait in the
        backlog until resume."""
        todo = [n for n in fired if n.target != "noop"]
        first_cmd = next((i for i, n in enumerate(todo) if n.is_command), None)
        if first_cmd is not None:
            tail = todo[first_cmd + 1 :] if todo[first_cmd].target == "pause" else []
            todo = todo[: first_cmd + 1] + tail
        for n in todo:
            if self.snap.state in TERMINAL:
                break
            if self.snap.state == State.PAUSED:
                self.rt["backlog"].append([n.target, task.id, n.params])
                continue
            if n.is_command:
                self.engine_command(task, n)
            else:
                self.schedule(n.target, task)

    def engine_command(self, task: TaskView, n: _Next) -> None:
        msg = n.params.get("msg")
        msg = msg if msg is None or isinstance(msg, str) else str(msg)
        if n.target == "fail":
            self.finish_workflow(State.ERROR, msg)
        elif n.target == "succeed":
            self.finish_workflow(State.SUCCESS, msg)
        elif n.target == "pause":
            self.set_wf_state(State.PAUSED, msg)

    # -- workflow --

    def finish_workflow(self, state: State, info: str | None = None) -> None:
        """Mistral's output: ``output`` (or ``output-on-error``) evaluated over
        the final context, or that context itself when there is none; a failed
        workflow's output also holds ``result`` with the failure message."""
        final = self.rt["end"]
        output: Any
        if state is State.CANCELLED:
            output = {"result": info}
        else:
            out_spec = self.spec.output if state is State.SUCCESS else self.spec.output_on_error
            try:
                output = evaluate(out_spec, self.expr_ctx(None, final)) if out_spec else None
                output = output or final
                if not isinstance(output, dict):
                    output = {"result": output}
                if state is State.ERROR:
                    output = merge_dicts({"result": info}, output)
                problem = self.oversized(output, "the workflow output")
                if problem:
                    raise ExpressionError(problem)
            except ExpressionError as exc:
                state = State.ERROR
                info = (
                    f"Failed to check and complete [wf_ex_id={self.snap.id}, wf_name={self.snap.workflow_name}]: {exc}"
                )
                output = {"result": info}
        self.snap.output = output
        self.set_wf_state(state, info)

    def end_live_actions(self, task: TaskView, state: State, reason: str, output: Any = None) -> None:
        """The task's actions that still run end in ``state`` with ``reason``
        (the workflow was cancelled, the task timed out)."""
        for action in task.actions:
            if action.state not in TERMINAL:
                action.state, action.state_info = state, reason
                action.accepted = state is not State.CANCELLED  # as before engine v2: a cancelled one is not taken
                if output is not None:
                    action.output = output
                self.touch_action(action)
                if action.kind == "workflow":
                    self.command(StopWorkflow(action.id, reason))

    def cancel_active(self, reason: str) -> None:
        for task in self.in_states(ACTIVE):
            self.end_live_actions(task, State.CANCELLED, reason)
            self.set_task_state(task, State.CANCELLED, reason)

    def run(self) -> None:
        """Start ready tasks until quiescent, then decide whether the workflow
        is done. Every task made ready in this call starts, even when one
        started before it paused or ended the workflow: in Mistral they all
        start once the transaction that made them commits."""
        while True:
            while self.ready and self.snap.state not in (State.CANCELLED,):
                if self.out_of_steps():
                    # The ready tasks are stored IDLE (or WAITING, for a join);
                    # Continue picks them up, as Resume does. A retry without
                    # delay goes on from a timer due at once.
                    for task in self.ready:
                        if task.state == State.RUNNING_DELAYED or task.runtime_context.get(policies.DELAYED):
                            self.command(StartTimer(task.id, "retry", 0))
                    self.d.more = True
                    return
                self.steps += 1
                self.start_task(self.ready.pop(0))
            if self.snap.state != State.RUNNING:
                return
            counts = self.rt["counts"]
            if sum(n for s, n in counts.items() if s != State.WAITING) > 0:
                return  # something runs elsewhere; a later event continues
            if counts.get(State.WAITING, 0) > 0:
                for join in self.in_states(frozenset({State.WAITING})):
                    arrived = self.arrived(join)
                    missing = [n for i, n in enumerate(self.spec.inbound[join.name]) if not arrived & (1 << i)]
                    self.complete_task(join, State.ERROR, [], f"Failed by tasks: {missing!r}")
                if self.ready or self.snap.state != State.RUNNING:
                    continue
                if sum(counts.values()) > 0:
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
        failed = self.unhandled() if self.rt["errors"] > 0 else []
        if self.rt.get("cancelled"):
            # Mistral's check_and_complete: a cancelled task (its sub-workflow was) cancels the workflow
            names = sorted(t.name for t in self.in_states(frozenset({State.CANCELLED})))
            self.finish_workflow(State.CANCELLED, f"Cancelled tasks: {', '.join(names)}")
        elif failed:
            self.finish_workflow(State.ERROR, self.failure_message(sorted(failed, key=lambda t: t.name)))
        else:
            self.finish_workflow(State.SUCCESS)

    def failure_message(self, failed: list[TaskView]) -> str:
        """Mistral's _build_fail_info_message: each failed task, and under it
        each of its action executions that failed (every attempt)."""
        msg = f"Failure caused by error in tasks: {', '.join(t.name for t in failed)}\n"
        for t in failed:
            msg += f"\n  {t.name} [task_ex_id={t.id}] -> {t.state_info}\n"
            stored = {a.id: a for a in self.store.actions_of(t.id)}
            stored.update({a.id: a for a in t.actions})
            for kind, label in (("action", "action_ex_id"), ("workflow", "wf_ex_id")):
                units = [a for a in stored.values() if a.kind == kind]
                for i, a in enumerate(units):
                    if a.state == State.ERROR:
                        out = (
                            (a.output or {}).get("result", "Unknown")
                            if kind == "action"
                            else (((a.output or {}).get("result") or {}).get("result", "Unknown"))
                        )  # the child's output
                        msg += f"    [{label}={a.id}, idx={i}]: {out}\n"
        return msg

    def unhandled(self) -> list[TaskView]:
        found = {t.id: t for t in map(self.adopt, self.store.unhandled_errors())}
        found.update({t.id: t for t in self.tasks.values()})
        return sorted(
            (t for t in found.values() if t.state == State.ERROR and t.runtime_context.get("error_handled") is False),
            key=lambda t: t.seq,
        )

    # -- events --

    def apply(self, event: Event) -> None:
        snap = self.snap
        if isinstance(event, Start):
            self.start()
        elif isinstance(event, ActionCompleted):
            found = self.store.task_of_action(event.action_id)
            if found is None:
                raise Missing("Action execution", event.action_id)
            task = self.adopt(found[0])
            action = next(a for a in task.actions if a.id == found[1].id)
            if action.state != State.RUNNING:
                raise Conflict(f"Action execution {action.id} is not RUNNING but {action.state}", action.state)
            if event.state not in (State.SUCCESS, State.ERROR) and not (
                action.kind == "workflow" and event.state == State.CANCELLED
            ):
                raise ValueError(f"an action completes in SUCCESS or ERROR, not {event.state}")
            self.finish_action(task, action, State(event.state), event.result, event.state_info)
            self.run()
        elif isinstance(event, TimerFired):
            self.timer_fired(event)
        elif isinstance(event, Pause):
            if snap.state != State.RUNNING:
                raise Conflict(f"Can not pause execution {snap.id} in state {snap.state}", snap.state)
            self.set_wf_state(State.PAUSED, event.reason)
        elif isinstance(event, Resume):
            if snap.state != State.PAUSED:
                raise Conflict(f"Can not resume execution {snap.id} in state {snap.state}", snap.state)
            self.set_wf_state(State.RUNNING)
            self.trace("WORKFLOW_RESUMED")
            self.resume()
        elif isinstance(event, Continue):
            if snap.state == State.RUNNING:
                self.ready = [t for t in self.in_states(frozenset({State.IDLE, State.WAITING})) if self.startable(t)]
                self.run()
        elif isinstance(event, (RerunTask, SkipTask)):
            self.operator_fix(event)
        elif isinstance(event, Cancel):
            if snap.state in TERMINAL:
                raise Conflict(f"Execution {snap.id} is already {snap.state}", snap.state)
            self.cancel_active("Workflow was cancelled")
            self.snap.output = {"result": event.reason}
            self.set_wf_state(State.CANCELLED, event.reason)

    def start(self) -> None:
        snap = self.snap
        if snap.state != State.IDLE:
            raise Conflict(f"Execution {snap.id} was already started", snap.state)
        self.set_wf_state(State.RUNNING)
        self.trace("WORKFLOW_LAUNCHED")
        try:
            snap.context = dict(evaluate(self.spec.vars, self.expr_ctx(None)) or {})
            problem = self.oversized({**snap.input, **snap.context}, "the workflow context (input and vars)")
            if problem:
                raise ExpressionError(problem)
        except ExpressionError as exc:
            snap.context = {}
            self.finish_workflow(State.ERROR, f"Failed to evaluate 'vars': {exc}")
            return
        for name in self.spec.start_tasks:
            self.schedule(name, None)
        self.run()

    def resume(self) -> None:
        """Go on where the pause stopped: tasks that ended meanwhile, the
        transitions a ``pause`` command left in the backlog, timers that fell
        due, then the tasks that were ready."""
        rt = self.rt
        pending, rt["pending"] = rt["pending"], []
        for task_id in pending:
            task = self.load(task_id)
            if not task.processed:
                self.process(task)
        backlog, rt["backlog"] = rt["backlog"], []
        for target, from_id, params in backlog:
            if self.snap.state != State.RUNNING:
                rt["backlog"].append([target, from_id, params])
                continue
            self.follow(self.load(from_id), [_Next(target, params, "backlog")])
        fired, rt["fired"] = rt["fired"], []
        for task_id, kind in fired:
            self.fire(self.load(task_id), kind)
        self.ready += [
            t
            for t in self.in_states(frozenset({State.IDLE, State.WAITING}))
            if self.startable(t) and not any(r is t for r in self.ready)
        ]
        self.run()

    def timer_fired(self, event: TimerFired) -> None:
        task = self.tasks.get(event.task_id) or self.adopt_found(self.store.task(event.task_id))
        if task is None or task.state in TERMINAL or self.snap.state in TERMINAL:
            return  # a timer of a task (or workflow) that already finished is a no-op
        if self.snap.state == State.PAUSED:
            self.rt["fired"].append([task.id, event.kind])
            return
        self.fire(task, event.kind)
        self.run()

    def fire(self, task: TaskView, kind: str) -> None:
        policies.fire(self, task, kind)

    def operator_fix(self, event: RerunTask | SkipTask) -> None:
        task = self.load(event.task_id)
        done = "rerun" if isinstance(event, RerunTask) else "skipped"
        if State(task.state) not in OPERATOR_TRANSITIONS:
            raise Conflict(f"Only a task in ERROR can be {done}; {task.name} is {task.state}", task.state)
        if self.snap.state not in (State.RUNNING, State.ERROR, State.PAUSED):
            raise Conflict(f"Execution {self.snap.id} is {self.snap.state}", self.snap.state)
        if self.snap.state == State.ERROR:
            self.set_wf_state(State.RUNNING)
            self.trace("WORKFLOW_RERUN")
        if task.runtime_context.pop("error_handled", None) is False:
            self.rt["errors"] = max(0, self.rt["errors"] - 1)
        task.processed = False
        if isinstance(event, RerunTask):
            items = task.runtime_context.get(WITH_ITEMS)
            policies.reset(task)
            if event.reset or items is None or not self.spec.tasks[task.name].with_items:
                self.invalidate(task)
            else:
                self.keep_items(task, items)
            self.trace("TASK_RERUN", task)
            self.set_task_state(task, State.IDLE, None)
            self.ready.append(task)
        else:
            self.complete_task(task, State.SKIPPED, task.result, "Task was skipped.")
        if self.snap.state == State.RUNNING:
            self.run()


def handle(
    spec: WorkflowSpec,
    snapshot: Snapshot,
    event: Event,
    make_id: Callable[[], str] = new_id,
    limits: Limits = DEFAULT,
    clock: Callable[[], float] = time.monotonic,
    store: Store | None = None,
    lookup: adhoc.Lookup | None = None,
) -> Decision:
    """Apply ``event`` to the execution and return what changed.

    ``snapshot`` and the views the store returns are changed in place (the
    caller builds them afresh for each call). Raises :class:`Conflict` when
    the event does not apply in the current state, before changing
    anything, and :class:`Missing` for an unknown task or action.
    ``Decision.more`` asks the caller to send :class:`Continue` once this
    decision is stored. Without a store, ``snapshot.tasks`` is the store and
    new tasks are appended to it. ``lookup`` finds ad-hoc actions by name
    and namespace (:mod:`core.adhoc`); without it only built-ins run.
    """
    own = store is None
    run = _Run(spec, snapshot, MemoryStore(snapshot.tasks) if store is None else store, make_id, limits, clock, lookup)
    run.apply(event)
    if own:
        snapshot.tasks.extend(run.d.new_tasks)
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
