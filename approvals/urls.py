"""Approval pages (mounted at "approvals/" by config.urls)."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("action/<str:action_id>/", views.for_action, name="for_action"),
    path("<str:approval_id>/", views.detail, name="detail"),
]
