from django.urls import include, path

from . import api

urlpatterns = [
    path("orders/", api.OrderListCreateView.as_view(), name="api-orders"),
    path("orders/sync/", include("orders.sync_api_urls")),
    path("orders/<str:order_id>/", api.OrderDetailView.as_view(), name="api-order"),
    path("account/", api.AccountView.as_view(), name="api-account"),
    path("positions/", api.PositionsView.as_view(), name="api-positions"),
]
