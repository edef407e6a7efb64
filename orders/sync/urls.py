from django.urls import path

from . import api

urlpatterns = [
    path("", api.SyncView.as_view(), name="api-orders-sync"),
    path("<str:task_id>/", api.SyncRunView.as_view(), name="api-orders-sync-run"),
]
