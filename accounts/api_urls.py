from django.urls import path

from . import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="token"),
    path("auth/token/refresh/", api.TokenRefresh.as_view(), name="token-refresh"),
    path("auth/logout/", api.LogoutView.as_view(), name="token-logout"),
    path("broker-accounts/", api.BrokerAccountListView.as_view(), name="api-broker-accounts"),
    path(
        "broker-accounts/<str:account_id>/",
        api.BrokerAccountDetailView.as_view(),
        name="api-broker-account",
    ),
]
