"""Tracker pages of the dashboard (mounted at "/tracker/" by config.urls)."""

from django.urls import path

from tracker import views

app_name = "tracker_pages"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("compare/", views.compare, name="compare"),
    path("compare/run", views.run_benchmark, name="run_benchmark"),
    path("events", views.events, name="events"),
]
