from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from workflows.api import views as api_views

urlpatterns = [
    re_path(r"^v2/?", include("workflows.api.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("admin/", admin.site.urls),
    path("versions", api_views.Versions.as_view()),
    path("", include("workflows.urls")),
]
