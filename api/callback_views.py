"""``/api/``: signed callbacks and tracker figures (what Mistral's API lacks)."""

import json

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api import resources
from api.views import _output_arg
from tracker import services
from workflows.errors import InvalidInput


class CallbackBody(serializers.Serializer):
    state = serializers.ChoiceField(choices=["SUCCESS", "ERROR"])
    output = serializers.JSONField(required=False, allow_null=True)
    finished_at = serializers.CharField(
        required=False,
        help_text="When the job ended (ISO 8601 or epoch seconds); for the tracker page's latency figures",
    )


class Callback(APIView):
    authentication_classes = []  # the signed token is the credential
    permission_classes = [AllowAny]

    @extend_schema(
        request=CallbackBody,
        responses={200: dict, 202: dict, 403: dict, 409: dict, 410: dict},
        summary="Complete an async action through its signed per-attempt URL",
    )
    def put(self, request, token):
        received_at = timezone.now()
        if not isinstance(request.data, dict) or "state" not in request.data:
            raise InvalidInput("Send a JSON object with 'state' (SUCCESS or ERROR) and 'output'")
        outcome = services.apply_callback(
            token,
            request.data["state"],
            _output_arg(request.data.get("output")),
            finished_at=request.data.get("finished_at"),
            received_at=received_at,
        )
        if outcome.status == 202:
            return Response(
                {"stored": True, "detail": "the action is not visible yet; the result will be applied once"},
                status=status.HTTP_202_ACCEPTED,
            )
        return Response(resources.action_execution(outcome.action))

    post = put


class Notification(APIView):
    """Mistral's execution notifications (its webhook publisher) for a
    ``mistral.workflow`` action: the body is Mistral's, not Gust's callback
    body, and may come without a Content-Type, so it is read as JSON here."""

    authentication_classes = []  # the signed token is the credential
    permission_classes = [AllowAny]

    @extend_schema(
        request=dict,
        responses={200: dict, 202: dict, 400: dict, 403: dict, 404: dict, 410: dict},
        summary="A remote Mistral's execution notification (WORKFLOW_SUCCEEDED, _FAILED, _CANCELLED)",
    )
    def post(self, request, token):
        received_at = timezone.now()
        try:
            body = json.loads(request.body or b"null")
        except ValueError as exc:
            services.check_token(token)  # a forged URL is 403 whatever its body
            raise InvalidInput(f"The notification is not JSON: {exc}") from None
        outcome = services.apply_notification(token, body, received_at=received_at)
        data = {"applied": outcome.applied, "detail": outcome.detail}
        if outcome.action is not None:
            data["action_execution"] = resources.action_execution(outcome.action)
        return Response(data, status=outcome.status)

    put = post


class Heartbeat(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={200: dict}, summary="Extend the action's deadline")
    def post(self, request, token):
        action = services.heartbeat(token)
        return Response({"id": action.id, "state": action.state, "deadline": action.deadline})


class Stats(APIView):
    @extend_schema(
        responses=inline_serializer(
            "TrackerStats", {"tracked": serializers.IntegerField(), "lag_s": serializers.FloatField()}
        ),
        summary="Tracker figures: tracked items, query rate, lag behind schedule, errors",
    )
    def get(self, request):
        return Response(services.stats())
