from django.urls import path

from api import callback_views as views

urlpatterns = [
    path("callbacks/<str:token>", views.Callback.as_view(), name="callback"),
    path("callbacks/<str:token>/notification", views.Notification.as_view(), name="callback-notification"),
    path("callbacks/<str:token>/heartbeat", views.Heartbeat.as_view(), name="callback-heartbeat"),
    path("tracker/stats", views.Stats.as_view(), name="tracker-stats"),
]
