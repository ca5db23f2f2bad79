"""REST /v2/environments, as Mistral's ``EnvironmentController``: list,
create (POST), update (PUT, the name in the body), get and delete by name."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import resources
from api.listing import paginate
from workflows import environments, selectors
from workflows import permissions as perms

FIELDS = {"id", "name", "description", "scope", "project_id", "created_at", "updated_at"}


class Environments(APIView):
    required = {"POST": (perms.ADD_ENVIRONMENT,), "PUT": (perms.CHANGE_ENVIRONMENT,)}

    def get(self, request):
        return Response(
            paginate(
                request,
                selectors.environments(),
                key="environments",
                render=resources.environment,
                filters=FIELDS,
                sortable=FIELDS,
            )
        )

    def post(self, request):
        env = environments.create(request.data)
        return Response(resources.environment(env), status=status.HTTP_201_CREATED)

    def put(self, request):
        return Response(resources.environment(environments.update(request.data)))


class EnvironmentDetail(APIView):
    required = {"DELETE": (perms.DELETE_ENVIRONMENT,)}

    def get(self, request, name):
        return Response(resources.environment(environments.find(name)))

    def delete(self, request, name):
        environments.delete(name)
        return Response(status=status.HTTP_204_NO_CONTENT)
