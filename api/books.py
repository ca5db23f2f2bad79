"""REST /v2 workbooks and actions (built-in and ad-hoc), as Mistral's
api/controllers/v2/workbook.py and action.py: YAML text bodies in, Mistral's
resources out, ``?namespace=`` on each. Managing them needs the same
permissions as managing workflows (a workbook writes workflows)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import resources
from api.listing import in_namespace, paginate
from api.views import namespace_arg, text_body, validation_response
from core import actions
from workflows import books, selectors
from workflows import permissions as perms
from workflows.errors import InvalidInput, NotFound

WORKBOOK_FIELDS = {"id", "name", "namespace", "scope", "project_id", "created_at", "updated_at", "definition"}


class Workbooks(APIView):
    required = {
        "POST": (perms.ADD_WORKFLOW,),
        "PUT": (perms.ADD_WORKFLOW, perms.CHANGE_WORKFLOW, perms.DELETE_WORKFLOW),
    }

    def get(self, request):
        return Response(
            paginate(
                request,
                in_namespace(request, selectors.workbooks()),
                key="workbooks",
                render=resources.workbook,
                filters=WORKBOOK_FIELDS | {"tags"},
                sortable=WORKBOOK_FIELDS - {"definition"},
            )
        )

    def post(self, request):
        wb = books.save_workbook(text_body(request, "workbook"), namespace_arg(request))
        return Response(resources.workbook(wb), status=status.HTTP_201_CREATED)

    def put(self, request):
        wb = books.save_workbook(text_body(request, "workbook"), namespace_arg(request), update=True)
        return Response(resources.workbook(wb))


class WorkbookDetail(APIView):
    required = {"DELETE": (perms.DELETE_WORKFLOW,)}

    def get(self, request, name):
        return Response(resources.workbook(books.find_workbook(name, namespace_arg(request))))

    def delete(self, request, name):
        books.delete_workbook(name, namespace_arg(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkbookValidate(APIView):
    def post(self, request):
        return validation_response(*books.validate_workbook(text_body(request, "workbook")))


class Actions(APIView):
    required = {"POST": (perms.ADD_WORKFLOW,), "PUT": (perms.ADD_WORKFLOW, perms.CHANGE_WORKFLOW)}

    def get(self, request):
        """The built-ins, then the ad-hoc actions, by name. As Mistral's,
        ``namespace`` defaults to '' (built-ins are there)."""
        namespace = namespace_arg(request)
        items = [resources.action_definition(a) for a in actions.every().values()] if not namespace else []
        items += [resources.adhoc_action(a) for a in selectors.adhoc_actions(namespace)]
        return Response({"actions": sorted(items, key=lambda a: a["name"])})

    def post(self, request):
        saved = books.save_actions(text_body(request, "action"), namespace_arg(request))
        return Response({"actions": [resources.adhoc_action(a) for a in saved]}, status=status.HTTP_201_CREATED)

    def put(self, request):
        saved = books.save_actions(
            text_body(request, "action"),
            namespace_arg(request),
            update=True,
            identifier=request.query_params.get("identifier") or None,
        )
        return Response({"actions": [resources.adhoc_action(a) for a in saved]})


class ActionDetail(APIView):
    required = {"DELETE": (perms.DELETE_WORKFLOW,)}

    def get(self, request, name, namespace=""):
        namespace = namespace_arg(request, namespace)
        adef = actions.get(name)
        if adef is not None:
            return Response(resources.action_definition(adef))
        row = books.get_action_definition(name, namespace)
        if row is None:
            raise NotFound("Action", f"{name}, namespace={namespace}", key="name")
        return Response(resources.adhoc_action(row))

    def delete(self, request, name, namespace=""):
        if actions.get(name) is not None:
            raise InvalidInput(f"Attempt to delete a system action: {name}")
        books.delete_action(name, namespace_arg(request, namespace))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ActionValidate(APIView):
    def post(self, request):
        return validation_response(*books.validate_actions(text_body(request, "action")))
