"""Dashboard routes (mounted at "/" by config.urls, namespace "dashboard")."""

from django.urls import path

from workflows import book_views, live, views

app_name = "dashboard"

urlpatterns = [
    path("", views.execution_list, name="executions"),
    path("executions/<str:execution_id>/", views.execution_detail, name="execution"),
    path("executions/events", live.list_events, name="executions_events"),
    path("executions/<str:execution_id>/events", live.execution_events, name="execution_events"),
    path("workflows/", views.workflow_list, name="workflows"),
    # Before <name>: "new" is the upload page, not a workflow called "new".
    path("workflows/new/", views.workflow_new, name="workflow_new"),
    path("workflows/<str:name>/", views.workflow_detail, name="workflow"),
    path("workbooks/", book_views.workbook_list, name="workbooks"),
    path("workbooks/<str:name>/", book_views.workbook_detail, name="workbook"),
    path("actions/", book_views.action_list, name="actions"),
]
