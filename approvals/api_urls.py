"""REST routes of approvals, mounted at "api/approvals" by config.urls
(a trailing slash is optional, as on /v2)."""

from django.urls import re_path

from approvals import api

ID = r"(?P<approval_id>[^/]+)"

urlpatterns = [
    re_path(r"^/?$", api.ApprovalList.as_view(), name="approvals-api-list"),
    re_path(rf"^/{ID}/?$", api.ApprovalDetail.as_view(), name="approvals-api-detail"),
    re_path(rf"^/{ID}/responses/?$", api.ApprovalAnswer.as_view(), name="approvals-api-answer"),
]
