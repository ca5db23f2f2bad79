"""Dashboard pages for workbooks and actions (built-in and ad-hoc): read
only; they change through ``/v2`` and the ``mistral`` CLI (``workflows.books``)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import YamlLexer

from core import actions
from workflows.models import ActionDefinition, Workbook, WorkflowDefinition


def _yaml(text: str) -> str:
    return highlight(text, YamlLexer(), HtmlFormatter(cssclass="highlight"))


@require_GET
def workbook_list(request):
    workbooks = Workbook.objects.order_by("namespace", "name")
    return render(request, "workflows/workbook_list.html", {"workbooks": workbooks, "nav": "workbooks"})


@require_GET
def workbook_detail(request, name: str):
    namespace = request.GET.get("namespace", "")
    wb = Workbook.objects.filter(name=name, namespace=namespace).first()
    if wb is None:
        raise Http404(f"No workbook named {name} in namespace '{namespace}'")
    owned = {"namespace": namespace, "workbook_name": wb.name}
    context = {
        "workbook": wb,
        "highlighted": _yaml(wb.definition),
        "workflows": WorkflowDefinition.objects.filter(**owned).order_by("name"),
        "actions": ActionDefinition.objects.filter(**owned).order_by("name"),
        "nav": "workbooks",
    }
    return render(request, "workflows/workbook_detail.html", context)


@require_GET
def action_list(request):
    """Built-in actions, then ad-hoc ones (every namespace), each with its input."""
    context = {
        "builtins": sorted(actions.every().values(), key=lambda a: a.name),
        "adhoc": ActionDefinition.objects.order_by("namespace", "name"),
        "nav": "actions",
    }
    return render(request, "workflows/action_list.html", context)
