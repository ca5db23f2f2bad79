"""The web dashboard: server-rendered pages over executions and workflows.

Views read rows directly but change nothing themselves: every write goes
through ``workflows.services`` (the same functions the REST API uses), and
the services' errors are shown to the user instead of becoming 500s.

The execution list and detail pages are live: a request with the header
``X-Gust-Live: 1`` (sent by ``static/live.js`` when ``workflows.live`` says
something changed) gets only the page's live region. Operator buttons post
to the operator console (``ops``), which checks permissions and
keeps the audit log.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import YamlLexer

from core import graph, policies, timeline
from core.lang.spec import build_workflow
from core.states import TERMINAL, State
from workflows import live, page_parts, selectors, services, tree
from workflows import permissions as perms
from workflows.errors import Conflict, DuplicateWorkflow, InvalidDefinition, InvalidInput, NotFound
from workflows.forms import INPUT_PREFIX, ExecutionFilterForm, StartExecutionForm, UploadForm
from workflows.models import TaskExecution, Timer, WorkflowDefinition, WorkflowExecution

PER_PAGE = 25
RESULT_PREVIEW = 80  # characters of a result shown before <details> is opened
JSON_LIMIT = 20_000  # a multi-megabyte result must not make the page unusable

# --- presentation helpers -----------------------------------------------------


def pretty_json(value, limit: int = JSON_LIMIT) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > limit:
        return text[:limit] + f"\n… (truncated, {len(text)} characters in all)"
    return text


def json_preview(value) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= RESULT_PREVIEW else text[: RESULT_PREVIEW - 1] + "…"


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return ""
    seconds = max(delta.total_seconds(), 0)
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def span(start: datetime | None, end: datetime | None, running: bool) -> str:
    """Finished: end - start. Still running: time so far (shown with a '…')."""
    if start is None:
        return ""
    if running:
        return format_duration(timezone.now() - start) + " …"
    return format_duration((end or start) - start)


def clock(moment: datetime | None) -> str:
    """Time of day with milliseconds: tasks of one run often differ by less than a second."""
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else ""


def execution_duration(ex: WorkflowExecution) -> str:
    # updated_at is the last change, which for a finished execution is its end.
    return span(ex.created_at, ex.updated_at, ex.state not in TERMINAL)


def is_live(request) -> bool:
    """True for live.js asking for the region only (not a whole page)."""
    return request.headers.get("X-Gust-Live") == "1"


# --- executions ---------------------------------------------------------------


@require_GET
def execution_list(request):
    # Taken before the rows are read: a change in between makes the page's
    # stream report it (one refresh too many), never leaves the page stale.
    version = live.list_fingerprint()
    form = ExecutionFilterForm(request.GET or None)
    state = q = ""
    if form.is_bound and form.is_valid():
        state, q = form.cleaned_data["state"], form.cleaned_data["q"].strip()
    page = Paginator(selectors.executions(state, q), PER_PAGE).get_page(request.GET.get("page"))
    for ex in page.object_list:
        ex.duration = execution_duration(ex)
    template = "workflows/_execution_rows.html" if is_live(request) else "workflows/execution_list.html"
    context = {"form": form, "page": page, "filtered": bool(state or q), "nav": "executions", "version": version}
    return render(request, template, context)


def timer_label(kind: str, due, retry_no: int | None = None, count=None) -> str:
    """How a page says what a task waits for: "retry 2 of 5 at 12:04:00"."""
    at = f"{timezone.localtime(due):%H:%M:%S}"
    if kind == "retry":
        of = f" of {count}" if isinstance(count, int) else ""
        return f"retry {retry_no or 1}{of} at {at}"
    if kind == "timeout":
        return f"times out at {at}"
    return f"waiting until {at} ({kind})"


def _waits(task: TaskExecution, timers: list[Timer], spec) -> list[str]:
    """What the task's timers say, soonest first; the retry count comes from
    the parsed spec, so task-defaults and the one-line form count too."""
    retry = spec.tasks[task.name].policies.retry if task.name in spec.tasks else None
    count = retry.count if retry else None
    return [timer_label(tm.kind, tm.due_at, task.runtime_context.get(policies.RETRY_NO), count) for tm in timers]


def _task_rows(execution: WorkflowExecution, pages: dict[str, int] | None = None) -> list[dict]:
    units = tree.units_of(execution, pages)
    rows = []
    timers: dict[str, list[Timer]] = {}
    for tm in selectors.timers_of(execution.id):
        timers.setdefault(tm.task_execution_id, []).append(tm)
    spec = build_workflow(execution.workflow_name, execution.spec) if timers else None
    for t in selectors.tasks_of(execution.id):
        running = t.finished_at is None and t.state not in TERMINAL
        mine = units.get(t.id) or tree.Units()
        rows.append(
            {
                "task": t,
                "duration": span(t.started_at, t.finished_at, running),
                "started": clock(t.started_at),
                "finished": clock(t.finished_at),
                "published": pretty_json(t.published) if t.published else "",
                "result": pretty_json(t.result) if t.result is not None else "",
                "result_preview": json_preview(t.result) if t.result is not None else "",
                "actions": [
                    {
                        "action": a,
                        "input": pretty_json(a.input),
                        "input_preview": json_preview(a.input),
                        "output": pretty_json(a.output) if a.output is not None else "",
                        "output_preview": json_preview(a.output),
                        "index": (a.runtime_context or {}).get("index"),
                    }
                    for a in mine.actions
                ],
                "children": [{"execution": c, "index": (c.params or {}).get("index")} for c in mine.children],
                "units": mine,
                "items": tree.items_progress(t),
                "anchor": False,
                "waits": _waits(t, timers[t.id], spec) if t.id in timers else [],
            }
        )
    # The graph links each node to the latest execution of its task.
    latest = {row["task"].name: row for row in rows}
    for row in latest.values():
        row["anchor"] = True
    return rows


def _task_spans(rows: list[dict]) -> list[timeline.Span]:
    """Timeline bars: each task execution, then its action executions under it.

    A task's bar starts when it started (when it was created, for one that
    waits on a join and has not started); an action's when it was created
    (dispatched). An action has no finish stamp: a finished one ended at its
    last update. Anything not finished is drawn to now.
    """
    spans = []
    for row in rows:
        t = row["task"]
        done = t.finished_at or (t.updated_at if t.state in TERMINAL else None)
        spans.append(timeline.Span(t.id, t.name, t.name, t.state, t.started_at or t.created_at, done))
        for a in row["actions"]:
            act = a["action"]
            end = act.updated_at if act.state in TERMINAL else None
            spans.append(timeline.Span(act.id, t.name, act.name, act.state, act.created_at, end, kind="action"))
    return spans


def _timeline_for(execution: WorkflowExecution, rows: list[dict]) -> dict:
    """The chart and, per bar, its duration as the task table writes it (for the tooltip)."""
    end = execution.updated_at if execution.state in TERMINAL else None
    chart = timeline.build(_task_spans(rows), timezone.now(), start=execution.created_at, end=end)
    bars = [{"row": r, "duration": format_duration(timedelta(seconds=r.seconds))} for r in chart.rows]
    total = format_duration(timedelta(seconds=chart.seconds)) if chart.rows else ""
    return {"chart": chart, "bars": bars, "total": total, "running": end is None}


def _available_moves(state: str) -> list[tuple[str, str]]:
    """(target state, button label) for the moves the engine accepts now."""
    moves = []
    if state == State.RUNNING:
        moves.append((State.PAUSED.value, "Pause"))
    if state == State.PAUSED:
        moves.append((State.RUNNING.value, "Resume"))
    if state not in TERMINAL:
        moves.append((State.CANCELLED.value, "Cancel"))
    return moves


def _graph_for(name: str, raw_spec: dict):
    """The layout, or None when a stored spec can not be built (never a 500)."""
    try:
        return graph.layout(build_workflow(name, raw_spec))
    except Exception:  # noqa: BLE001 - a picture is optional; the page must still render
        return None


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and len(raw) < 9 else 1


@require_GET
def execution_detail(request, execution_id: str):
    try:
        execution = selectors.execution(execution_id)
    except NotFound:
        raise Http404(f"No execution with id {execution_id}") from None
    paged = request.GET.get("items_task")
    tasks = _task_rows(execution, {paged: _page_number(request.GET.get("items_page"))} if paged else None)
    layout = _graph_for(execution.workflow_name, execution.spec)
    if layout is not None:
        latest = {row["task"].name: row["task"].state for row in tasks}  # ordered by seq: last one wins
        layout = layout.with_states(latest)
    context = {
        "execution": execution,
        "duration": execution_duration(execution),
        "moves": _available_moves(execution.state),
        "input": pretty_json(execution.input),
        "output": pretty_json(execution.output),
        "params": pretty_json(execution.params),
        "tasks": tasks,
        "lineage": tree.lineage(execution),
        "page_size": tree.ITEMS_PER_PAGE,
        "layout": layout,
        "timeline": _timeline_for(execution, tasks),
        "workflow_exists": selectors.workflow_exists(execution.workflow_name, execution.workflow_namespace),
        "nav": "executions",
        "version": live.fingerprint_of(execution),  # of the row shown, not a newer one
        "page_parts": page_parts.execution_page(),  # the operator console's buttons, when it is installed
    }
    template = "workflows/_execution_live.html" if is_live(request) else "workflows/execution_detail.html"
    return render(request, template, context)


# --- workflows ----------------------------------------------------------------


@require_GET
def workflow_list(request):
    return render(request, "workflows/workflow_list.html", {"workflows": selectors.workflows(), "nav": "workflows"})


def _find_workflow(request, name: str) -> WorkflowDefinition:
    try:
        return services.find_workflow(name, request.GET.get("namespace", ""))
    except NotFound:
        raise Http404(f"No workflow named {name}") from None


@require_http_methods(["GET", "POST"])
def workflow_detail(request, name: str):
    wf = _find_workflow(request, name)
    spec = build_workflow(wf.name, wf.spec)
    form = StartExecutionForm(spec, request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            perms.require(request.user, perms.START)
            execution = services.start_execution(
                wf.name,
                form.workflow_input(),
                description=form.cleaned_data["description"],
                namespace=wf.namespace,
            )
        except (InvalidInput, NotFound, perms.Forbidden) as exc:
            form.add_error(None, exc.message)
            for name, message in getattr(exc, "fields", {}).items():
                if INPUT_PREFIX + name in form.fields:  # an unexpected input has no field
                    form.add_error(INPUT_PREFIX + name, message)
            status = 403 if isinstance(exc, perms.Forbidden) else 400
        else:
            messages.success(request, f"Started execution {execution.id} ({execution.state}).")
            return redirect("dashboard:execution", execution_id=execution.id)
    elif request.method == "POST":
        status = 400
    context = {
        "workflow": wf,
        "spec": spec,
        "highlighted": highlight(wf.definition, YamlLexer(), HtmlFormatter(cssclass="highlight")),
        "layout": _graph_for(wf.name, wf.spec),
        "recent": selectors.recent_executions(wf),
        "form": form,
        "nav": "workflows",
    }
    for ex in context["recent"]:
        ex.duration = execution_duration(ex)
    return render(request, "workflows/workflow_detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
def workflow_new(request):
    form = UploadForm(request.POST if request.method == "POST" else None)
    errors: list[dict] = []
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                perms.require(
                    request.user, perms.ADD_WORKFLOW, *((perms.CHANGE_WORKFLOW,) if form.cleaned_data["update"] else ())
                )
                saved = services.save_workflows(form.cleaned_data["definition"], update=form.cleaned_data["update"])
            except InvalidDefinition as exc:
                errors = exc.errors
            except DuplicateWorkflow as exc:
                label = form.fields["update"].label
                form.add_error(None, f"Workflow {exc.name} already exists: tick “{label}” to replace it.")
            except (Conflict, InvalidInput, perms.Forbidden) as exc:
                form.add_error(None, exc.message)
                status = 403 if isinstance(exc, perms.Forbidden) else 400
            else:
                names = ", ".join(w.name for w in saved)
                messages.success(request, f"Saved {len(saved)} workflow(s): {names}.")
                return redirect("dashboard:workflow", name=saved[0].name)
    return render(
        request, "workflows/workflow_new.html", {"form": form, "errors": errors, "nav": "workflows"}, status=status
    )
