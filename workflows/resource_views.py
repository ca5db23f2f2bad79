"""Dashboard pages for what executions are started with: named
environments and cron triggers (list and detail, read-only; they are
changed through ``/v2`` and the ``mistral`` CLI)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workflows import environments, selectors, triggers
from workflows.errors import NotFound
from workflows.views import PER_PAGE, pretty_json


def _or_404(find, identifier: str):
    try:
        return find(identifier)
    except NotFound as exc:
        raise Http404(exc.message) from None


@require_GET
def environment_list(request):
    return render(
        request, "workflows/environment_list.html", {"environments": selectors.environments(), "nav": "environments"}
    )


@require_GET
def environment_detail(request, name: str):
    env = _or_404(environments.find, name)
    return render(
        request,
        "workflows/environment_detail.html",
        {
            "env": env,
            "variables": pretty_json(env.variables),
            "nav": "environments",
        },
    )


@require_GET
def cron_trigger_list(request):
    return render(
        request,
        "workflows/cron_trigger_list.html",
        {
            "triggers": selectors.cron_triggers(),
            "nav": "cron_triggers",
        },
    )


@require_GET
def cron_trigger_detail(request, identifier: str):
    trigger = _or_404(triggers.find, identifier)
    started = selectors.started_by_trigger(trigger, PER_PAGE)
    return render(
        request,
        "workflows/cron_trigger_detail.html",
        {
            "trigger": trigger,
            "workflow_input": pretty_json(trigger.workflow_input),
            "workflow_params": pretty_json(trigger.workflow_params),
            "executions": started,
            "nav": "cron_triggers",
        },
    )
