from django.urls import path

from . import views

urlpatterns = [
    path("", views.api_keys_page, name="api-keys-page"),
    path("<int:key_pk>/revoke/", views.revoke_key, name="api-key-revoke"),
]
