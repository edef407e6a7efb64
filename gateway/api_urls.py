from django.urls import path

from . import api

urlpatterns = [
    path("api-keys/", api.ApiKeyListView.as_view(), name="api-keys"),
    path("api-keys/<int:key_pk>/", api.ApiKeyDetailView.as_view(), name="api-key"),
]
