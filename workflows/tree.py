"""The execution page's place in a tree, read through ``workflows.selectors``:
the chain of parent executions up to the root (the breadcrumb), each task's
action and sub-workflow executions, capped per task so that a with-items
task of 10,000 items costs one page of rows, and a with-items task's counters.

Read only; the engine's counters (``runtime_context["with_items"]``) say how
far a with-items task is, so nothing here counts rows to know it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count

from core import policies
from workflows import selectors
from workflows.errors import NotFound
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

ITEMS_PER_PAGE = 50  # action or sub-workflow executions shown per task
MAX_LINEAGE = 64  # parents walked up at most (GUST_SUBWORKFLOW_MAX_DEPTH bounds real trees to 20)


@dataclass
class Crumb:
    execution: WorkflowExecution
    task: TaskExecution  # the task of ``execution`` that started the next one down


# What a crumb shows of a task and its execution.
_CRUMB = (
    "id",
    "name",
    "workflow_execution__id",
    "workflow_execution__workflow_name",
    "workflow_execution__state",
    "workflow_execution__task_execution_id",
)


def lineage(execution: WorkflowExecution) -> list[Crumb]:
    """The executions above ``execution``, root first, each with the task
    that started the one below it. Empty for a root execution."""
    chain: list[Crumb] = []
    task_id = execution.task_execution_id
    while task_id and len(chain) < MAX_LINEAGE:
        try:
            task = selectors.task(task_id, fields=_CRUMB)
        except NotFound:  # (deleted under it; the root id on the row still links)
            break
        chain.insert(0, Crumb(task.workflow_execution, task))
        task_id = task.workflow_execution.task_execution_id
    return chain


@dataclass
class Units:
    """One task's executions on the page: ``rows`` is one page of them."""

    actions: list[ActionExecution] = field(default_factory=list)
    children: list[WorkflowExecution] = field(default_factory=list)
    total: int = 0
    page: int = 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // ITEMS_PER_PAGE))

    @property
    def capped(self) -> bool:
        return self.total > ITEMS_PER_PAGE

    @property
    def first(self) -> int:
        return (self.page - 1) * ITEMS_PER_PAGE + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * ITEMS_PER_PAGE)


def units_of(execution: WorkflowExecution, pages: dict[str, int] | None = None) -> dict[str, Units]:
    """Each task's action and sub-workflow executions (a task has one kind
    or the other), at most ITEMS_PER_PAGE per task: the page ``pages[task
    id]`` (1 when not given). Two count queries, one query for the tasks
    that fit on a page, one per task that does not."""
    pages = pages or {}
    tasks = selectors.tasks_of(execution.id).values("id")
    actions, children = selectors.actions_of(tasks), selectors.children_of(tasks)
    found: dict[str, Units] = {}
    for kind, qs in (("actions", actions), ("children", children)):
        counts = {
            row["task_execution_id"]: row["n"]
            for row in qs.order_by().values("task_execution_id").annotate(n=Count("id"))
        }
        big = [t for t, n in counts.items() if n > ITEMS_PER_PAGE]
        for t, n in counts.items():
            found.setdefault(t, Units()).total += n
        for row in qs.exclude(task_execution_id__in=big):
            getattr(found[row.task_execution_id], kind).append(row)
        for t in big:
            units = found[t]
            units.page = min(max(1, pages.get(t, 1)), units.pages)
            start = (units.page - 1) * ITEMS_PER_PAGE
            getattr(units, kind).extend(qs.filter(task_execution_id=t)[start : start + ITEMS_PER_PAGE])
    return found


def items_progress(task: TaskExecution) -> dict | None:
    """A with-items task's items from the engine's counters: N in all, how
    many ended (and of them failed), run now, and wait to start."""
    wi = (task.runtime_context or {}).get(policies.WITH_ITEMS)
    if not wi:
        return None
    count, done = wi.get("count", 0), wi.get("done", 0)
    failed = wi.get("errors", 0) + wi.get("cancelled", 0)
    waiting = max(0, count - wi.get("next", 0)) + len(wi.get("redo") or ())
    return {
        "count": count,
        "done": done,
        "succeeded": done - failed,
        "failed": failed,
        "running": wi.get("running", 0),
        "waiting": waiting,
        "percent": round(100 * done / count) if count else 100,
    }
