"""Dashboard routes (mounted at "/" by config.urls, namespace "dashboard")."""

from django.urls import path

from workflows import book_views, live, resource_views, views

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
    path("environments/", resource_views.environment_list, name="environments"),
    path("environments/<str:name>/", resource_views.environment_detail, name="environment"),
    path("cron-triggers/", resource_views.cron_trigger_list, name="cron_triggers"),
    path("cron-triggers/<str:identifier>/", resource_views.cron_trigger_detail, name="cron_trigger"),
    path("workbooks/", book_views.workbook_list, name="workbooks"),
    path("workbooks/<str:name>/", book_views.workbook_detail, name="workbook"),
    path("actions/", book_views.action_list, name="actions"),
]
