"""Dashboard pages for what executions are started with: named
environments and cron triggers (list and detail, read-only; they are
changed through ``/v2`` and the ``mistral`` CLI)."""

from __future__ import annotations

import json

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workflows import environments, triggers
from workflows.errors import NotFound
from workflows.models import CronTrigger, Environment, WorkflowExecution
from workflows.views import PER_PAGE, pretty_json


def _or_404(find, identifier: str):
    try:
        return find(identifier)
    except NotFound as exc:
        raise Http404(exc.message) from None


@require_GET
def environment_list(request):
    envs = Environment.objects.order_by("name")
    return render(request, "workflows/environment_list.html", {"environments": envs, "nav": "environments"})


@require_GET
def environment_detail(request, name: str):
    env = _or_404(environments.find, name)
    return render(request, "workflows/environment_detail.html", {
        "env": env, "variables": pretty_json(env.variables), "nav": "environments",
    })


@require_GET
def cron_trigger_list(request):
    return render(request, "workflows/cron_trigger_list.html", {
        "triggers": CronTrigger.objects.order_by("next_execution_time", "name"), "nav": "cron_triggers",
    })


@require_GET
def cron_trigger_detail(request, identifier: str):
    trigger = _or_404(triggers.find, identifier)
    # The executions it started carry its id in their description (Mistral's triggered_by).
    started = (WorkflowExecution.objects.filter(description__contains=json.dumps(trigger.id))
               .only("id", "workflow_name", "state", "created_at").order_by("-created_at")[:PER_PAGE])
    return render(request, "workflows/cron_trigger_detail.html", {
        "trigger": trigger, "workflow_input": pretty_json(trigger.workflow_input),
        "workflow_params": pretty_json(trigger.workflow_params), "executions": started, "nav": "cron_triggers",
    })
