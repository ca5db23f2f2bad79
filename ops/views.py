"""Operator console: the waiting view, the audit log, and the POST endpoints
behind the dashboard's operator buttons.

Each button posts here; the view calls one ``ops.services``
function (which checks the permission and writes the audit row) and goes
back to the page it came from with the outcome as a message. A missing
permission is a 403 page; an anonymous user is sent to the login page.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.errors import Forbidden
from core.states import State
from ops import services as ops
from ops.forms import AuditFilterForm, CompleteActionForm, WaitingFilterForm
from ops.models import OperatorAction
from ops.selectors import audit_log
from ops.waiting import waiting_rows
from workflows import completions, selectors
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.models import ActionExecution

PER_PAGE = 50


def _back(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def forbidden(request, message: str):
    return render(request, "403.html", {"message": message}, status=403)


def _run(request, back: str, call, *args):
    """Call one operator service and go back to ``back`` with its outcome.

    Anonymous users go to the login page and then back to ``back`` (the page
    the button was on, not this POST-only address)."""
    if not request.user.is_authenticated:
        return redirect_to_login(back)
    try:
        entry = call(request.user, *args)
    except Forbidden as exc:
        return forbidden(request, exc.message)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except (Conflict, InvalidInput) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{entry.summary}.")
    return redirect(back)


def _execution_page(execution_id) -> str:
    return reverse("dashboard:execution", args=[execution_id]) if execution_id else reverse("ops:waiting")


@require_POST
def execution_state(request, execution_id: str):
    back = _back(request, _execution_page(execution_id))
    return _run(request, back, ops.change_execution_state, execution_id, request.POST.get("state", ""))


def _task_page(task_id: str) -> str:
    try:
        task = selectors.task(task_id, fields=("workflow_execution_id",))
    except NotFound:
        raise Http404(f"No task execution with id {task_id}") from None
    return _execution_page(task.workflow_execution_id)


@require_POST
def task_rerun(request, task_id: str):
    reset = request.POST.get("reset") != "false"  # "false": only a with-items task's failed items
    return _run(request, _back(request, _task_page(task_id)), ops.rerun_task, task_id, reset)


@require_POST
def task_skip(request, task_id: str):
    return _run(request, _back(request, _task_page(task_id)), ops.skip_task, task_id)


def _action_or_404(action_id: str) -> ActionExecution:
    try:
        return selectors.action_execution(action_id)
    except NotFound:
        raise Http404(f"No action execution with id {action_id}") from None


@require_POST
def action_tracking(request, action_id: str):
    back = _back(request, _execution_page(_action_or_404(action_id).workflow_execution_id))
    if request.POST.get("track") == "stop":
        return _run(request, back, ops.untrack, action_id)
    return _run(request, back, ops.track, action_id, request.POST.get("mode") or "poll")


@login_required
@require_http_methods(["GET", "POST"])
def action_complete(request, action_id: str):
    """A form page: the operator types the result as JSON and picks SUCCESS or ERROR."""
    action = _action_or_404(action_id)
    if not ops.allowed(request.user, OperatorAction.Kind.COMPLETE_ACTION):
        return forbidden(
            request,
            f"{request.user.get_username()} may not complete actions: the permission "
            f"{ops.PERMISSION[OperatorAction.Kind.COMPLETE_ACTION]} is needed",
        )
    form = CompleteActionForm(request.POST or None)
    status = 200
    back = _back(request, _execution_page(action.workflow_execution_id))
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                with completions.completing("by hand", door="operator"):
                    entry = ops.complete_action(
                        request.user, action_id, form.cleaned_data["state"], form.cleaned_data["output"]
                    )
            except Forbidden as exc:
                return forbidden(request, exc.message)
            except (Conflict, InvalidInput, NotFound) as exc:
                form.add_error(None, exc.message)
                status = 409 if isinstance(exc, Conflict) else 400
            else:
                messages.success(request, f"{entry.summary}.")
                return redirect(back)
    context = {
        "action": action,
        "form": form,
        "next": back,
        "running": action.state == State.RUNNING,
        "input": json.dumps(action.input, indent=2, sort_keys=True, default=str),
        "nav": "waiting",
    }
    return render(request, "ops/complete_action.html", context, status=status)


@require_GET
def waiting(request):
    """Every action waiting for the outside world, oldest first; public like the dashboard."""
    form = WaitingFilterForm(request.GET or None)
    mode = form.cleaned_data["mode"] if form.is_bound and form.is_valid() else ""
    rows = waiting_rows(mode)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    template = "ops/_waiting_rows.html" if request.headers.get("X-Gust-Live") else "ops/waiting.html"
    return render(request, template, {"form": form, "page": page, "mode": mode, "nav": "waiting"})


@login_required
@require_GET
def audit(request):
    form = AuditFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    qs = audit_log(
        execution_id=(data.get("execution") or "").strip(),
        kind=data.get("kind") or "",
        username=(data.get("user") or "").strip(),
    )
    page = Paginator(qs, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "ops/audit.html", {"form": form, "page": page, "nav": "audit"})
