"""Just enough of Keystone v3 for python-mistralclient to log in to Gust.

The mistral CLI only sends a token after asking Keystone for one, so Gust
answers the two calls it makes: version discovery at ``/identity/v3`` and
``POST /identity/v3/auth/tokens`` with a user name and password (or an
existing token). The token it hands out is the user's Gust API token; the
CLI then sends it as ``X-Auth-Token`` to ``/v2``.

    export OS_AUTH_URL=http://127.0.0.1:8000/identity/v3
    export OS_USERNAME=admin OS_PASSWORD=admin
    mistral --os-mistral-url http://127.0.0.1:8000/v2 workflow-list
"""

from datetime import timedelta

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.utils import timezone
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows.errors import GustError, InvalidInput

PROJECT = {"id": "default-project", "name": "default", "domain": {"id": "default", "name": "Default"}}


class Unauthorized(GustError):
    status = 401


class TooManyFailures(GustError):
    status = 429


class Version(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(
            {
                "version": {
                    "id": "v3.14",
                    "status": "stable",
                    "updated": "2026-01-01T00:00:00Z",
                    "links": [{"rel": "self", "href": request.build_absolute_uri("/identity/v3/")}],
                    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
                }
            }
        )


def _user_from(request, identity: dict):
    methods = identity.get("methods") or []
    if "password" in methods:
        user = (identity.get("password") or {}).get("user") or {}
        # The request goes along so failed logins count against this address (django-axes).
        found = authenticate(request, username=user.get("name"), password=user.get("password"))
        if getattr(request, "axes_locked_out", False):
            raise TooManyFailures("Too many failed logins for this user from this address; try again later")
        if found is None:
            raise Unauthorized("The request you have made requires authentication: wrong user name or password")
        user_logged_in.send(sender=found.__class__, request=request, user=found)  # resets the failure count
        return found, "password"
    if "token" in methods:
        key = (identity.get("token") or {}).get("id")
        token = Token.objects.select_related("user").filter(key=key).first()
        if token is None or not token.user.is_active:
            user_login_failed.send(sender=__name__, credentials={"username": "token"}, request=request)
            raise Unauthorized("The request you have made requires authentication: unknown token")
        return token.user, "token"
    raise InvalidInput("auth.identity.methods must include password or token")


class Tokens(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        auth = (request.data or {}).get("auth") if isinstance(request.data, dict) else None
        if not isinstance(auth, dict):
            raise InvalidInput('Send {"auth": {"identity": ...}} as Keystone v3 does')
        user, method = _user_from(request._request, auth.get("identity") or {})
        token, _ = Token.objects.get_or_create(user=user)
        now = timezone.now()
        role = "admin" if user.is_superuser else "member"
        body = {
            "methods": [method],
            "user": {
                "id": str(user.pk),
                "name": user.get_username(),
                "domain": PROJECT["domain"],
                "password_expires_at": None,
            },
            "audit_ids": [token.key[:8]],
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "expires_at": (now + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "roles": [{"id": role, "name": role}],
        }
        if auth.get("scope"):
            v2 = request.build_absolute_uri("/v2")
            body["project"] = PROJECT
            body["catalog"] = [
                {
                    "type": "workflowv2",
                    "name": "mistral",
                    "id": "gust",
                    "endpoints": [
                        {"id": f"gust-{i}", "interface": i, "region": "RegionOne", "region_id": "RegionOne", "url": v2}
                        for i in ("public", "internal", "admin")
                    ],
                }
            ]
        return Response({"token": body}, status=status.HTTP_201_CREATED, headers={"X-Subject-Token": token.key})
