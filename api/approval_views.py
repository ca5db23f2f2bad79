"""REST for approvals (``/api/approvals/``), described in the OpenAPI schema.

The same operations as the pages, through the same service: list what the
caller may answer, read one approval, answer it. Errors are Gust's usual
``{"faultstring": ...}``; a schema-invalid answer adds ``errors`` per field.
Clients log in with an API token (``X-Auth-Token``, as for /v2), HTTP
Basic, or the browser session. An answer always needs a person, so these
views ask for a login even where ``API_AUTH`` opens the rest of the API.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import access, selectors, services
from approvals.errors import InvalidData
from approvals.forms import AGES, INBOX_STATUSES
from approvals.models import Approval, ApprovalResponse, Assignment
from workflows import completions
from workflows.auth import XAuthTokenAuthentication
from workflows.errors import InvalidInput

LIST_LIMIT = 200


class ResponseSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="username")

    class Meta:
        model = ApprovalResponse
        fields = ["user", "decision", "comment", "data", "at"]


class ApprovalSerializer(serializers.ModelSerializer):
    action_execution_id = serializers.CharField(source="action_id", allow_null=True)
    assignees = serializers.SerializerMethodField()
    groups = serializers.SerializerMethodField()
    responses = ResponseSerializer(many=True, read_only=True)
    can_answer = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        fields = [
            "id",
            "title",
            "description",
            "status",
            "form",
            "quorum",
            "reject_on_first",
            "assignees",
            "groups",
            "expires_at",
            "on_expiry",
            "escalate_to",
            "escalated_at",
            "remind_every",
            "reminders_sent",
            "workflow_name",
            "task_name",
            "execution_id",
            "action_execution_id",
            "result",
            "closed_at",
            "closed_reason",
            "created_at",
            "updated_at",
            "responses",
            "can_answer",
        ]

    def _names(self, obj, kind) -> list[str]:
        return sorted(a.name for a in obj.assignments.all() if a.kind == kind)

    def get_assignees(self, obj) -> list[str]:
        return self._names(obj, Assignment.USER)

    def get_groups(self, obj) -> list[str]:
        return self._names(obj, Assignment.GROUP)

    def get_can_answer(self, obj) -> bool:
        return obj.is_open and access.can_answer(self.context["request"].user, obj)


class AnswerSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[ApprovalResponse.APPROVE, ApprovalResponse.REJECT])
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    data = serializers.JSONField(required=False, default=dict, help_text="Must match the approval's form schema.")


Error = inline_serializer(
    "ApprovalError",
    {
        "faultstring": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
        "state": serializers.CharField(required=False),
    },
)


class _Base(APIView):
    authentication_classes = [XAuthTokenAuthentication, BasicAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def _get(self, request, approval_id: str) -> Approval:
        approval = selectors.approval(approval_id, with_answers=True)
        if not access.can_view(request.user, approval):
            raise PermissionDenied(f"{request.user.get_username()} is not an assignee of this approval")
        return approval


class ApprovalList(_Base):
    @extend_schema(
        operation_id="approvals_list",
        parameters=[
            OpenApiParameter("status", enum=[s for s, _ in INBOX_STATUSES], description="default: pending"),
            OpenApiParameter("workflow", description="part of the workflow name"),
            OpenApiParameter("age", enum=[a for a, _ in AGES if a]),
        ],
        responses={200: inline_serializer("ApprovalListing", {"approvals": ApprovalSerializer(many=True)})},
    )
    def get(self, request):
        status_ = request.query_params.get("status") or "pending"
        if status_ not in dict(INBOX_STATUSES):
            raise InvalidInput(f"status must be one of {', '.join(dict(INBOX_STATUSES))}")
        age = request.query_params.get("age", "")
        if age not in dict(AGES):
            raise InvalidInput(f"age must be one of {', '.join(a for a, _ in AGES if a)}")
        qs = selectors.inbox(request.user, status_, request.query_params.get("workflow", "").strip(), age)
        qs = qs.prefetch_related("assignments", "responses")[:LIST_LIMIT]
        return Response({"approvals": ApprovalSerializer(qs, many=True, context={"request": request}).data})


class ApprovalDetail(_Base):
    @extend_schema(operation_id="approvals_retrieve", responses={200: ApprovalSerializer, 403: Error, 404: Error})
    def get(self, request, approval_id: str):
        return Response(ApprovalSerializer(self._get(request, approval_id), context={"request": request}).data)


class ApprovalAnswer(_Base):
    @extend_schema(
        operation_id="approvals_answer",
        request=AnswerSerializer,
        responses={201: ApprovalSerializer, 400: Error, 403: Error, 404: Error, 409: Error},
        description="Approve or reject. 403: not an assignee; 400: data that breaks the form schema "
        "(errors per field); 409: already answered by you, or the approval is closed.",
    )
    def post(self, request, approval_id: str):
        answer = AnswerSerializer(data=request.data)
        if not answer.is_valid():
            return Response(
                {"faultstring": "Invalid answer", "errors": answer.errors}, status=status.HTTP_400_BAD_REQUEST
            )
        try:
            with completions.completing("approval", door="approval-api"):
                services.answer(approval_id, request.user, **answer.validated_data)
        except InvalidData as exc:
            return Response(
                {"faultstring": exc.message, "errors": exc.field_errors}, status=status.HTTP_400_BAD_REQUEST
            )
        approval = self._get(request, approval_id)
        return Response(ApprovalSerializer(approval, context={"request": request}).data, status=status.HTTP_201_CREATED)
