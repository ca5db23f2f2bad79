"""REST routes of approvals, mounted at "api/approvals" by config.urls
(a trailing slash is optional, as on /v2)."""

from django.urls import re_path

from api import approval_views as views

ID = r"(?P<approval_id>[^/]+)"

urlpatterns = [
    re_path(r"^/?$", views.ApprovalList.as_view(), name="approvals-api-list"),
    re_path(rf"^/{ID}/?$", views.ApprovalDetail.as_view(), name="approvals-api-detail"),
    re_path(rf"^/{ID}/responses/?$", views.ApprovalAnswer.as_view(), name="approvals-api-answer"),
]
