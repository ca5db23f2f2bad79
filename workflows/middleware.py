"""Dashboard pages ask for a login when the installation does (API_AUTH on).

The REST API answers 401 itself (DRF); signed callbacks, discovery, the
login page, the admin and static files are reachable without a session.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login

OPEN_PREFIXES = ("/accounts/", "/admin/", "/static/", "/v2", "/api/", "/identity/", "/versions")


class DashboardLoginRequired:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            settings.API_AUTH
            and not request.user.is_authenticated
            and not request.path.startswith(OPEN_PREFIXES)
            and not (request.path == "/" and wants_versions_document(request))
        ):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)


def wants_versions_document(request) -> bool:
    """Only a request that asks for JSON by name gets Mistral's versions
    document at ``/``; ``*/*`` (curl's and requests' default) is a browser-like
    request for the dashboard, which asks for a login."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept
