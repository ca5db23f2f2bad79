"""Mistral's execution report (``GET /v2/executions/<id>/report``,
``mistral execution-get-report``): the tree of an execution's task
executions, their action executions and their sub-workflow executions,
recursively, with statistics (mistral/api/controllers/v2/execution_report.py).

Read only. The tree is read one level of sub-workflows at a time (three
queries a level, not one per task), and its size is bounded by
``GUST["REPORT_MAX_ENTRIES"]``: past it the caller gets a 400 that says how
to ask for less, instead of a response holding every action execution of a
10,000-item with-items task.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.utils import timezone

from core import policies
from core.states import State
from workflows import conf, selectors
from workflows.errors import InvalidInput
from workflows.models import WorkflowExecution
from workflows.rows import ts

# Mistral's ESTIMATED_TIME_QUERY_LIMIT: finished runs the estimate averages.
ESTIMATED_TIME_QUERY_LIMIT = 20
# The task states Mistral's statistics count (update_statistics_with_task);
# a task in another state (WAITING, CANCELLED, ...) is in no count, not even the total.
COUNTED = {
    State.RUNNING: "running",
    State.SUCCESS: "success",
    State.ERROR: "error",
    State.IDLE: "idle",
    State.PAUSED: "paused",
}

_BASE = ("id", "state", "state_info", "created_at", "updated_at")


def max_entries() -> int:
    return conf.api("REPORT_MAX_ENTRIES")


def build(execution_id: str, *, errors_only: bool = False, max_depth: int = -1, statistics_only: bool = False) -> dict:
    """The report resource. Raises NotFound for an unknown execution, and
    InvalidInput when the tree would hold more than ``max_entries()`` task,
    action and sub-workflow executions (statistics alone are never refused)."""
    root = selectors.execution(execution_id, fields=(*_BASE, "workflow_name", "workflow_id"))
    stats = {f"{name}_tasks_count": 0 for name in ("total", "running", "success", "error", "idle", "paused")}
    stats["estimated_time"] = estimated_time(root)
    report: dict = {"statistics": stats}
    if statistics_only:
        _count_only(root, stats, errors_only, max_depth)
    else:
        report["root_workflow_execution"] = _tree(root, stats, errors_only, max_depth)
    return report


def estimated_time(ex: WorkflowExecution) -> int:
    """Mistral's estimate_time_for_execution: 0 unless RUNNING; -1 when the
    workflow never succeeded before; else the average run time of its last
    successful executions minus the time this one has run, at least 1."""
    if ex.state != State.RUNNING:
        return 0
    previous = selectors.successful_runs(ex.workflow_id, excluding=ex.id)[:ESTIMATED_TIME_QUERY_LIMIT]
    runs = [(end - start).total_seconds() for start, end in previous]
    if not runs:
        return -1
    left = sum(runs) / len(runs) - (timezone.now() - ex.created_at).total_seconds()
    return int(left) if left >= 1 else 1


def _add(stats: dict, state: str, n: int = 1) -> None:
    name = COUNTED.get(state)
    if name:
        stats[f"{name}_tasks_count"] += n
        stats["total_tasks_count"] += n


def _tasks_of(level, errors_only: bool) -> QuerySet:
    qs = selectors.tasks_of(level)
    return qs.filter(state=State.ERROR) if errors_only else qs


def _deeper(depth: int, max_depth: int) -> bool:
    """Mistral's ``0 <= max_depth < cur_depth``, negated: the workflow
    executions at ``depth`` (the root is 0) show their tasks."""
    return max_depth < 0 or depth <= max_depth


def _count_only(root: WorkflowExecution, stats: dict, errors_only: bool, max_depth: int) -> None:
    """Mistral's analyse_execution_statistics_only: a count per state and level, no rows loaded."""
    level: QuerySet | list[str] = [root.id]
    depth = 0
    while _deeper(depth, max_depth):
        tasks = _tasks_of(level, errors_only)
        counts = list(tasks.order_by().values("state").annotate(n=Count("id")))
        if not counts:
            return
        for row in counts:
            _add(stats, row["state"], row["n"])
        level = selectors.children_of(tasks.values("id")).values("id")
        depth += 1


class _Budget:
    def __init__(self, what: str):
        self.left = max_entries()
        self.what = what

    def take(self, qs: QuerySet) -> list:
        """The rows of ``qs``, at most what is left of the budget (one row more is read to know)."""
        rows = list(qs[: self.left + 1])
        if len(rows) > self.left:
            raise InvalidInput(
                f"{self.what} would hold more than {max_entries()} entries "
                f"(task, action and sub-workflow executions; GUST_REPORT_MAX_ENTRIES). Ask for less with "
                f"errors_only=true, max_depth=<n> or statistics_only=true."
            )
        self.left -= len(rows)
        return rows


def _entry(row, name: str) -> dict:
    return {
        "id": row.id,
        "name": name,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "state": row.state,
        "state_info": row.state_info,
    }


def _tree(root: WorkflowExecution, stats: dict, errors_only: bool, max_depth: int) -> dict:
    """Mistral's analyse_workflow_execution, breadth first: each level's
    tasks, their actions and their children in three queries."""
    budget = _Budget(f"The report of execution {root.id}")
    top = _entry(root, root.workflow_name)
    level = {root.id: top}
    depth = 0
    while level and _deeper(depth, max_depth):
        for entry in level.values():
            entry["task_executions"] = []
        tasks = budget.take(
            _tasks_of(list(level), errors_only)
            .only(*_BASE, "name", "workflow_execution_id", "runtime_context")
            .order_by("workflow_execution_id", "seq")
        )
        by_task: dict[str, dict] = {}
        for t in tasks:
            _add(stats, t.state)
            entry = _entry(t, t.name)
            if policies.RETRY_NO in (t.runtime_context or {}):
                entry["retry_count"] = t.runtime_context[policies.RETRY_NO]
            entry["action_executions"] = []
            entry["workflow_executions"] = []
            level[t.workflow_execution_id]["task_executions"].append(entry)
            by_task[t.id] = entry
        ids = list(by_task)
        for a in budget.take(selectors.actions_of(ids).only(*_BASE, "name", "accepted", "task_execution_id")):
            entry = _entry(a, a.name)
            entry.update(accepted=a.accepted, last_heartbeat=None)
            by_task[a.task_execution_id]["action_executions"].append(entry)
        level = {}
        for c in budget.take(selectors.children_of(ids).only(*_BASE, "workflow_name", "task_execution_id")):
            level[c.id] = _entry(c, c.workflow_name)
            by_task[c.task_execution_id]["workflow_executions"].append(level[c.id])
        depth += 1
    return top


def sub_executions(origin: str, ident: str, *, errors_only: bool = False, max_depth: int = -1) -> list:
    """Mistral's SubExecutionsController (``GET /v2/executions/<id>/executions``,
    ``GET /v2/tasks/<id>/executions``): the workflow executions of the tree,
    depth first, each followed by the children of its tasks in task order; for
    an execution it comes first itself. ``errors_only``: only through tasks
    in ERROR; ``max_depth``: sub-workflow levels below the execution (or the
    task's children), negative for all. Bounded as the report is."""
    budget = _Budget(f"The sub-executions of {ident}")
    if origin == "execution":
        top = [selectors.execution(ident)]
    else:
        task = selectors.task(ident, fields=("id", "state"))
        if errors_only and task.state != State.ERROR:
            return []
        top = budget.take(selectors.children_of(task.id))
    below: dict[str, list[WorkflowExecution]] = {}
    level, depth = top, 1
    while level and _deeper(depth, max_depth):
        tasks = budget.take(
            _tasks_of([w.id for w in level], errors_only)
            .order_by("workflow_execution_id", "seq")
            .values_list("id", "workflow_execution_id")
        )
        level = budget.take(selectors.children_of([t for t, _ in tasks]))
        of_task: dict[str, list[WorkflowExecution]] = {}
        for child in level:
            of_task.setdefault(child.task_execution_id, []).append(child)
        for task_id, wf_id in tasks:
            below.setdefault(wf_id, []).extend(of_task.get(task_id, ()))
        depth += 1
    found, stack = [], list(reversed(top))
    while stack:
        ex = stack.pop()
        found.append(ex)
        stack.extend(reversed(below.get(ex.id, ())))
    return found


def parse_flag(raw: str | None, name: str) -> bool:
    """A query flag as WSME reads a bool (``true``/``True``/``1``...)."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on", "y", "t"):
        return True
    if value in ("false", "0", "no", "off", "n", "f", ""):
        return False
    raise InvalidInput(
        f"Invalid input for field/attribute {name}. Value: '{raw[:40]}'. Wrong type. Expected 'bool', got 'str'"
    )


def parse_depth(raw: str | None) -> int:
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"Invalid input for field/attribute max_depth. Value: '{raw[:40]}'. Wrong type. Expected 'int', got 'str'"
        ) from None
