from django.urls import path

from . import sync_api

urlpatterns = [
    path("", sync_api.SyncView.as_view(), name="api-orders-sync"),
    path("<str:task_id>/", sync_api.SyncRunView.as_view(), name="api-orders-sync-run"),
]
