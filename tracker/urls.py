from django.urls import path

from tracker import api

urlpatterns = [
    path("callbacks/<str:token>", api.Callback.as_view(), name="callback"),
    path("callbacks/<str:token>/notification", api.Notification.as_view(), name="callback-notification"),
    path("callbacks/<str:token>/heartbeat", api.Heartbeat.as_view(), name="callback-heartbeat"),
    path("tracker/stats", api.Stats.as_view(), name="tracker-stats"),
]
