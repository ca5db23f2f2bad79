"""Dashboard pages ask for a login when the installation does (API_AUTH on),
and every request carries an id that unexpected errors are logged under.

The REST API answers 401 itself (DRF), and so does /metrics; signed callbacks,
discovery, the login page, the admin, static files, the favicon and the load
balancer's probes (/healthz, /readyz) are reachable without a session.
"""

import logging
import re
import uuid

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.views import redirect_to_login
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import JsonResponse

from workflows import conf

OPEN_PREFIXES = (
    "/accounts/",
    "/admin/",
    "/static/",
    "/favicon.ico",
    "/v2",
    "/api/",
    "/identity/",
    "/versions",
    "/healthz",
    "/readyz",
    "/metrics",
)  # probes; /metrics answers 401 itself


class DashboardLoginRequired:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            not request.path.startswith(OPEN_PREFIXES)
            and conf.get("API_AUTH")
            and not (request.path == "/" and wants_versions_document(request))
            and not request.user.is_authenticated
        ):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)


SESSIONLESS_PREFIXES = ("/v2", "/api/")  # the REST API and signed callbacks: no page, no form, no login


def sessionless(request) -> bool:
    """An API request that carries no session cookie. Its answer needs no
    session, no ``request.user`` (DRF authenticates the token itself, and
    its SessionAuthentication finds no user) and no flash messages, so the
    middleware for those lets it pass untouched:
    that was a quarter of the CPU of ``GET /v2/executions/<id>``
    (bench/README.md, "HTTP path"). With a session cookie (the dashboard's
    own calls to ``/api``) every layer runs as before."""
    found = getattr(request, "_gust_sessionless", None)
    if found is None:
        found = request._gust_sessionless = (
            request.path.startswith(SESSIONLESS_PREFIXES) and settings.SESSION_COOKIE_NAME not in request.COOKIES
        )
    return found


class _ForSessions:
    """The middleware's own work, except for a :func:`sessionless` request."""

    def __call__(self, request):
        if sessionless(request):
            return self.get_response(request)
        return super().__call__(request)


class Sessions(_ForSessions, SessionMiddleware):
    pass


class Authentication(_ForSessions, AuthenticationMiddleware):
    pass


class Messages(_ForSessions, MessageMiddleware):
    pass


def wants_versions_document(request) -> bool:
    """Only a request that asks for JSON by name gets Mistral's versions
    document at ``/``; ``*/*`` (curl's and requests' default) is a browser-like
    request for the dashboard, which asks for a login."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


API_PREFIXES = ("/v2", "/api/", "/identity/")  # JSON {"faultstring"} answers
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
request_logger = logging.getLogger("gust.request")


class RequestId:
    """Every request gets an id, answered in ``X-Request-ID`` (and in
    ``x-openstack-request-id``, as Mistral does); a client's own
    ``X-Request-ID`` is kept when it is a plain token. An unexpected error
    is logged with its traceback and that id, and the API answers it with
    ``{"faultstring": ...}`` naming the id, so a report can be matched to
    the log line. A NUL character in an API URL is refused here: PostgreSQL
    can not compare it with anything."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.META.get("HTTP_X_REQUEST_ID", "")  # request.headers would copy them all
        request.request_id = given if _CLIENT_ID.fullmatch(given) else f"req-{uuid.uuid4()}"
        if request.path.startswith(API_PREFIXES) and _has_nul(request):
            response = JsonResponse({"faultstring": "NUL characters (%00) are not allowed in the URL"}, status=400)
        else:
            response = self.get_response(request)
        response["X-Request-ID"] = response["x-openstack-request-id"] = request.request_id
        return response

    def process_exception(self, request, exception):
        request_id = getattr(request, "request_id", "-")
        request_logger.error(
            "[%s] %s %s failed: %s: %s",
            request_id,
            request.method,
            request.get_full_path()[:500],
            type(exception).__name__,
            exception,
            exc_info=exception,
        )
        if request.path.startswith(API_PREFIXES):
            return JsonResponse(
                {"faultstring": f"Internal error; the server log has the details under request id {request_id}"},
                status=500,
            )
        return None  # Django's own 500 page


def _has_nul(request) -> bool:
    return "\x00" in request.path or any(
        "\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()
    )
