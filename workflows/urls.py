from django.urls import path

from workflows import views

app_name = "dashboard"

urlpatterns = [
    path("", views.execution_list, name="executions"),
]
