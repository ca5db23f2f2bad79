"""REST /v2/cron_triggers, as Mistral's ``CronTriggersController``: list,
create (POST), get and delete by name or id."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import resources
from api.listing import paginate
from workflows import permissions as perms
from workflows import selectors, triggers

FIELDS = {
    "id",
    "name",
    "pattern",
    "workflow_name",
    "workflow_id",
    "remaining_executions",
    "first_execution_time",
    "next_execution_time",
    "project_id",
    "created_at",
    "updated_at",
}


class CronTriggers(APIView):
    required = {"POST": (perms.ADD_CRON_TRIGGER,)}

    def get(self, request):
        return Response(
            paginate(
                request,
                selectors.cron_triggers(),
                key="cron_triggers",
                render=resources.cron_trigger,
                filters=FIELDS,
                sortable=FIELDS,
            )
        )

    def post(self, request):
        return Response(resources.cron_trigger(triggers.create(request.data)), status=status.HTTP_201_CREATED)


class CronTriggerDetail(APIView):
    required = {"DELETE": (perms.DELETE_CRON_TRIGGER,)}

    def get(self, request, identifier):
        return Response(resources.cron_trigger(triggers.find(identifier)))

    def delete(self, request, identifier):
        triggers.delete(identifier)
        return Response(status=status.HTTP_204_NO_CONTENT)
