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
from workflows import books, selectors
from workflows.errors import NotFound


def _yaml(text: str) -> str:
    return highlight(text, YamlLexer(), HtmlFormatter(cssclass="highlight"))


@require_GET
def workbook_list(request):
    return render(request, "workflows/workbook_list.html", {"workbooks": selectors.workbooks(), "nav": "workbooks"})


@require_GET
def workbook_detail(request, name: str):
    namespace = request.GET.get("namespace", "")
    try:
        wb = books.find_workbook(name, namespace)
    except NotFound:
        raise Http404(f"No workbook named {name} in namespace '{namespace}'") from None
    context = {
        "workbook": wb,
        "highlighted": _yaml(wb.definition),
        "workflows": selectors.workbook_workflows(wb),
        "actions": selectors.workbook_actions(wb),
        "nav": "workbooks",
    }
    return render(request, "workflows/workbook_detail.html", context)


@require_GET
def action_list(request):
    """Built-in actions, then ad-hoc ones (every namespace), each with its input."""
    context = {
        "builtins": sorted(actions.every().values(), key=lambda a: a.name),
        "adhoc": selectors.adhoc_actions(),
        "nav": "actions",
    }
    return render(request, "workflows/action_list.html", context)
