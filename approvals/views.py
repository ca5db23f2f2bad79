"""Approval pages: the inbox, one approval with its form and history.

Short views: parse with a form, call ``approvals.services.answer``, show its
error on the page with the matching status (403 not an assignee, 400 data
that breaks the schema, 409 answered twice or closed). Nothing here writes.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from approvals import access, selectors, services
from approvals.errors import Forbidden, InvalidData
from approvals.forms import AnswerForm, InboxFilterForm
from approvals.models import Approval, ApprovalResponse
from workflows import completions
from workflows.errors import Conflict, InvalidInput, NotFound
from workflows.views import pretty_json

PER_PAGE = 25


@login_required
@require_GET
def inbox(request):
    form = InboxFilterForm(request.GET or None)
    status, workflow, age = "pending", "", ""
    if form.is_bound and form.is_valid():
        status = form.cleaned_data["status"] or "pending"
        workflow, age = form.cleaned_data["workflow"].strip(), form.cleaned_data["age"]
    rows = selectors.inbox(request.user, status, workflow, age)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    mine = selectors.decisions_of(request.user.get_username(), page.object_list)
    for a in page.object_list:
        a.my_decision = mine.get(a.id)
    context = {
        "form": form,
        "page": page,
        "status": status,
        "nav": "approvals",
        "filtered": bool(workflow or age or status != "pending"),
    }
    return render(request, "approvals/inbox.html", context)


def _or_404(find, ident: str) -> Approval:
    try:
        return find(ident)
    except NotFound:
        raise Http404("No Approval matches the given query.") from None  # get_object_or_404's words


def _forbidden(request, approval: Approval, message: str):
    return render(request, "403.html", {"approval": approval, "message": message, "nav": "approvals"}, status=403)


@login_required
@require_http_methods(["GET", "POST"])
def detail(request, approval_id: str):
    approval = _or_404(selectors.approval, approval_id)
    user = request.user
    if not access.can_view(user, approval):
        return _forbidden(request, approval, f"{user.get_username()} is not an assignee of this approval.")
    form = AnswerForm(approval, request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                with completions.completing("approval", door="approval-page"):
                    services.answer(
                        approval.id,
                        user,
                        request.POST.get("decision", ""),
                        form.cleaned_data["comment"],
                        form.schema_data(),
                    )
            except Forbidden as exc:
                return _forbidden(request, approval, exc.message)
            except InvalidData as exc:
                form.add_schema_errors(exc.field_errors)
            except Conflict as exc:
                form.add_error(None, exc.message)
                status = 409
            except (InvalidInput, NotFound) as exc:
                form.add_error(None, exc.message)
            else:
                verb = "approved" if request.POST["decision"] == "approve" else "rejected"
                messages.success(request, f"You {verb} “{approval.title}”.")
                return redirect("approvals:detail", approval_id=approval.id)
    responses = list(approval.responses.all())
    approvals = sum(r.decision == ApprovalResponse.APPROVE for r in responses)
    context = {
        "approval": approval,
        "form": form,
        "responses": responses,
        "approvals": approvals,
        "can_answer": access.can_answer(user, approval),
        "mine": next((r for r in responses if r.username == user.get_username()), None),
        "assignments": list(approval.assignments.order_by("via", "kind", "name")),
        "result_json": pretty_json(approval.result) if approval.result is not None else "",
        "execution": selectors.execution_of(approval),
        "nav": "approvals",
    }
    return render(request, "approvals/detail.html", context, status=status)


@login_required
@require_GET
def for_action(request, action_id: str):
    """The execution page links an approval action here without knowing the approval's id."""
    approval = _or_404(selectors.approval_of_action, action_id)
    return redirect("approvals:detail", approval_id=approval.id)
