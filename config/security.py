"""What a locked-out login attempt gets back (django-axes' lockout callable)."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpResponse, JsonResponse

from workflows.middleware import API_PREFIXES


def locked_out(request, original_response=None, credentials=None):
    """429 after too many failed logins for one user name from one address:
    JSON ``{"faultstring"}`` on the API and the Keystone stand-in, a short
    page elsewhere."""
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    message = (
        f"Too many failed logins for this user from this address; try again in {minutes:.0f} minutes "
        "or ask an administrator to unlock it (manage.py axes_reset_username <user>)."
    )
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"faultstring": message}, status=429)
    return HttpResponse(message, status=429, content_type="text/plain")


class LoginRateLimit(AxesStandaloneBackend):
    """django-axes' backend, for logins that come with a request. Every login
    door of Gust passes one (the login page, the admin, the Keystone
    stand-in, Basic auth); a call without one is Python code of the project
    itself (the test client, a shell) and has no address to count against."""

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
