"""The engine's data: what it reads (row views, the snapshot, the store it
asks for task executions), the events it takes, the commands and the decision
it returns. Pure, as the engine (core/engine.py), which imports it; so do the
policies (core/policies.py) and the Django side (workflows/services.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.lang.spec import WorkflowSpec, merge_dicts
from core.states import State

# --- state ---------------------------------------------------------------------


@dataclass
class ActionView:
    id: str
    name: str
    state: str
    input: dict = field(default_factory=dict)
    output: Any = None
    state_info: str | None = None
    is_sync: bool = True
    index: int | None = None  # a with-items item's position
    accepted: bool = False  # its result counts for the task (Mistral's flag; a retry clears it)
    kind: str = "action"  # or "workflow": a sub-workflow execution, whose id this is
    runtime_context: dict = field(default_factory=dict)  # an ad-hoc action's base and outputs (adhoc.KEY)


@dataclass
class TaskView:
    id: str
    name: str
    state: str
    seq: int  # creation order inside the execution
    state_info: str | None = None
    result: Any = None
    published: dict = field(default_factory=dict)
    runtime_context: dict = field(default_factory=dict)  # join arrivals, policy state, error handling
    processed: bool = False
    started: bool = False
    finished: bool = False
    in_context: dict = field(default_factory=dict)
    actions: list[ActionView] = field(default_factory=list)  # the live ones (and those made in this call)
    spec: dict = field(default_factory=dict, repr=False)
    # A with-items task's evaluated lists, once this call evaluated or read them
    # (the store keeps them: Store.items); items_new: evaluated in this call, to store.
    items: dict | None = field(default=None, repr=False)
    items_new: bool = False

    def view(self) -> dict:
        """What ``task(name)`` returns inside an expression."""
        return {
            "id": self.id,
            "name": self.name,
            "spec": self.spec,
            "state": self.state,
            "state_info": self.state_info,
            "result": self.result,
            "published": self.published,
        }

    def outbound(self) -> dict:
        return merge_dicts(self.in_context, self.published or {})


def new_runtime() -> dict:
    """The counters an execution keeps between events (``Snapshot.runtime``)."""
    return {"seq": 0, "counts": {}, "errors": 0, "end": {}, "pending": [], "backlog": [], "fired": []}


@dataclass
class Snapshot:
    id: str
    workflow_name: str
    state: str
    input: dict
    params: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)  # vars and global publishes (Mistral's wf_ex.context)
    output: dict = field(default_factory=dict)
    state_info: str | None = None
    runtime: dict = field(default_factory=new_runtime)
    created_at: str | None = None
    updated_at: str | None = None
    root_execution_id: str | None = None  # set for a sub-workflow (its depth is runtime["depth"])
    # For callers without a store of their own (tests, a fresh execution):
    # every task execution, in creation order; handle() appends new ones.
    tasks: list[TaskView] = field(default_factory=list)


class Store(Protocol):
    """Where the engine reads the task executions it needs, each with its live
    action executions. Returned views belong to the engine for the call."""

    def task(self, task_id: str) -> TaskView | None: ...

    def task_of_action(self, action_id: str) -> tuple[TaskView, ActionView] | None: ...

    def latest(self, name: str) -> TaskView | None: ...

    def in_states(self, states: frozenset[str]) -> list[TaskView]: ...

    def unhandled_errors(self) -> list[TaskView]: ...

    def all_tasks(self) -> list[TaskView]: ...

    def workflow(self, name: str) -> WorkflowSpec | None:
        """The spec of the workflow a ``workflow:`` task names (its
        workbook's own first, as Mistral resolves short names), or None."""
        ...

    def items(self, task_id: str) -> dict | None:
        """A with-items task's lists as stored when its items started."""
        ...

    def descendant_tasks(self) -> list[dict]:
        """``task()`` views of the task executions of every sub-workflow
        under this execution (for ``tasks(..., recursive => true)``)."""
        ...

    def actions_of(self, task_id: str) -> list[ActionView]:
        """Every action execution of the task (attempts included), oldest first."""
        ...


class MemoryStore:
    """A :class:`Store` over a list of task views, for tests and for an
    execution created in the current transaction (it has no rows yet)."""

    def __init__(self, tasks: list[TaskView], workflows: dict[str, WorkflowSpec] | None = None):
        self.tasks = tasks
        self.workflows = workflows or {}

    def workflow(self, name):
        return self.workflows.get(name)

    def items(self, task_id):
        task = self.task(task_id)
        return task.items if task else None

    def descendant_tasks(self):
        return []

    def task(self, task_id):
        return next((t for t in self.tasks if t.id == task_id), None)

    def task_of_action(self, action_id):
        for t in self.tasks:
            for a in t.actions:
                if a.id == action_id:
                    return t, a
        return None

    def latest(self, name):
        found = [t for t in self.tasks if t.name == name]
        return max(found, key=lambda t: t.seq) if found else None

    def in_states(self, states):
        return [t for t in self.tasks if t.state in states]

    def unhandled_errors(self):
        return [t for t in self.tasks if t.state == State.ERROR and t.runtime_context.get("error_handled") is False]

    def all_tasks(self):
        return list(self.tasks)

    def actions_of(self, task_id):
        task = self.task(task_id)
        return list(task.actions) if task else []


# --- events ------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class ActionCompleted:
    """An action execution ended, or a sub-workflow did (its id is then the
    child execution's, ``result`` its output, ``state_info`` its reason;
    CANCELLED is possible only for it)."""

    action_id: str
    state: str  # SUCCESS or ERROR
    result: Any = None
    state_info: str | None = None


@dataclass(frozen=True)
class TimerFired:
    """A durable timer of a task is due (``wait-before``, ``wait-after``,
    ``retry``, ``timeout``). A timer of a task that finished is a no-op."""

    task_id: str
    kind: str


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
    """An operator runs a failed task again (a new action execution).
    ``reset=False`` (``mistral task-rerun --resume``) runs again only the
    items of a with-items task that failed, were cancelled or never started."""

    task_id: str
    reset: bool = True


@dataclass(frozen=True)
class SkipTask:
    """An operator skips a failed task: it ends SKIPPED and its on-skip (or,
    without one, on-success) transitions are followed."""

    task_id: str


Event = Start | ActionCompleted | TimerFired | Pause | Resume | Cancel | RerunTask | SkipTask | Continue


class Conflict(Exception):
    """The event does not apply to the execution as it is now (e.g. an action
    that is no longer RUNNING). ``state`` is the current state."""

    def __init__(self, message: str, state: str):
        super().__init__(message)
        self.state = state


class Missing(Exception):
    """The event names a task or action execution this execution does not have."""

    def __init__(self, kind: str, ident: str):
        super().__init__(f"{kind} not found [id={ident}]")
        self.kind, self.ident = kind, ident


# --- commands ----------------------------------------------------------------


@dataclass(frozen=True)
class RunAction:
    """A worker must run this action execution, after the decision is stored."""

    action_id: str


@dataclass(frozen=True)
class StartTimer:
    """Store a durable timer: send ``TimerFired(task_id, kind)`` in ``seconds``."""

    task_id: str
    kind: str
    seconds: float


@dataclass(frozen=True)
class CancelTimers:
    """Drop the task's timers of these kinds (they would be no-ops)."""

    task_id: str
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class StartWorkflow:
    """Create and start the sub-workflow execution ``child_id`` of the
    task; its end comes back as ``ActionCompleted(child_id, ...)``."""

    child_id: str
    task_id: str
    workflow_name: str
    input: dict
    params: dict


@dataclass(frozen=True)
class StopWorkflow:
    """The task no longer waits for this sub-workflow: cancel it."""

    child_id: str
    reason: str


@dataclass(frozen=True)
class InvalidateResults:
    """The task's earlier action and sub-workflow executions no longer
    count for its result (a retry or a rerun starts its items again);
    with ``only``, just those (the failed items of a rerun with reset false)."""

    task_id: str
    only: tuple[str, ...] = ()


Command = RunAction | StartTimer | CancelTimers | StartWorkflow | StopWorkflow | InvalidateResults


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
    commands: list[Command] = field(default_factory=list)
    trace: list[TraceEvent] = field(default_factory=list)
    more: bool = False  # the step limit was reached: send Continue in a new transaction

    @property
    def dispatch(self) -> list[str]:
        """Action ids a worker must run."""
        return [c.action_id for c in self.commands if isinstance(c, RunAction)]


def new_id() -> str:
    return str(uuid.uuid4())
