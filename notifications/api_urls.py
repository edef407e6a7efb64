from django.urls import path

from . import api

urlpatterns = [
    path("notifications/", api.NotificationListView.as_view(), name="notifications"),
    path(
        "notifications/preferences/",
        api.PreferencesView.as_view(),
        name="notification-preferences",
    ),
    path(
        "notifications/<int:notification_pk>/read/",
        api.NotificationReadView.as_view(),
        name="notification-read",
    ),
    path("webhook-endpoints/", api.EndpointListView.as_view(), name="webhook-endpoints"),
    path(
        "webhook-endpoints/<int:endpoint_pk>/",
        api.EndpointDetailView.as_view(),
        name="webhook-endpoint",
    ),
]
