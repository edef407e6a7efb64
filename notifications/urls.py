from django.urls import path

from . import views

urlpatterns = [
    path("", views.notifications_page, name="notifications-page"),
    path("read/", views.mark_read, name="notifications-read"),
    path("webhooks/", views.add_endpoint, name="webhook-add"),
    path(
        "webhooks/<int:endpoint_pk>/<slug:action>/",
        views.endpoint_action,
        name="webhook-action",
    ),
]
