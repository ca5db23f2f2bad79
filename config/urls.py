from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import FileResponse, JsonResponse
from django.urls import include, path, re_path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api import identity
from api import schema as api_schema
from api import views as api_views
from config import health
from ops import metrics
from workflows import views as dashboard_views
from workflows.middleware import API_PREFIXES, wants_versions_document


def root(request):
    """``/`` is the dashboard for browsers and Mistral's versions document
    for API clients that ask for JSON only."""
    if wants_versions_document(request):
        return api_views.Versions.as_view()(request)
    return dashboard_views.execution_list(request)


def not_found(request, exception=None):
    """Unknown paths under the APIs answer as the APIs do: JSON with a faultstring."""
    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"faultstring": f"Not found: {request.method} {request.path}"}, status=404)
    return page_not_found(request, exception)


handler404 = not_found


def favicon(request):
    """Browsers ask for /favicon.ico on pages without ``<link rel="icon">``
    (the admin, the API), and a 404 there fills every log."""
    path = Path(settings.BASE_DIR) / "static" / "favicon.svg"
    return FileResponse(path.open("rb"), content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


urlpatterns = [
    re_path(r"^v2/?", include("api.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/v2", api_schema.V2Schema.as_view(), name="schema-v2"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/approvals", include("api.approval_urls")),
    path("api/", include("api.callback_urls")),
    path("admin/", admin.site.urls),
    path("tracker/", include("tracker.urls_pages")),
    path("versions", api_views.Versions.as_view()),
    path("favicon.ico", favicon),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    re_path(r"^identity/v3/?$", identity.Version.as_view()),
    path("identity/v3/auth/tokens", identity.Tokens.as_view()),
    path(
        "accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True, next_page="/"), name="login"
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("approvals/", include("approvals.urls")),
    path("ops/", include("ops.urls")),
    path("", root),
    path("", include("workflows.urls")),
]
