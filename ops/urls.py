"""Operator console routes (mounted at "ops/" by config.urls, namespace "ops")."""

from django.urls import path

from ops import views

app_name = "ops"

urlpatterns = [
    path("waiting/", views.waiting, name="waiting"),
    path("audit/", views.audit, name="audit"),
    path("executions/<str:execution_id>/state", views.execution_state, name="execution_state"),
    path("tasks/<str:task_id>/rerun", views.task_rerun, name="task_rerun"),
    path("tasks/<str:task_id>/skip", views.task_skip, name="task_skip"),
    path("actions/<str:action_id>/complete", views.action_complete, name="action_complete"),
    path("actions/<str:action_id>/tracking", views.action_tracking, name="action_tracking"),
]
