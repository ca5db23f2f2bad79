"""API tokens as python-mistralclient sends them.

``mistral --os-mistral-url URL --os-auth-token TOKEN`` (env OS_AUTH_TOKEN)
sends ``X-Auth-Token: TOKEN`` and skips Keystone entirely; Gust checks the
token against DRF's token table (``manage.py api_token <user>`` makes one).
``Authorization: Token TOKEN`` works too.
"""

from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission

from workflows import conf, permissions


class XAuthTokenAuthentication(TokenAuthentication):
    def authenticate(self, request):
        token = request.META.get("HTTP_X_AUTH_TOKEN")  # not request.headers: it copies every header
        if token:
            return self.authenticate_credentials(token.strip())
        return super().authenticate(request)

    def authenticate_header(self, request):
        return "X-Auth-Token"


class LoginRequiredUnlessOpen(BasePermission):
    """IsAuthenticated, unless ``GUST["API_AUTH"]`` is off (read per request,
    so ``override_settings`` works); then the permissions a view names for
    the request's method in ``required = {"POST": (perm, ...)}``."""

    def has_permission(self, request, view):
        if not conf.get("API_AUTH"):
            return True
        if not (request.user and request.user.is_authenticated):
            return False
        permissions.require(request.user, *getattr(view, "required", {}).get(request.method, ()))
        return True
