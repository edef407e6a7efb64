from django.urls import path

from . import api

urlpatterns = [
    path("orders/", api.OrderListCreateView.as_view(), name="api-orders"),
    path("orders/<str:order_id>/", api.OrderDetailView.as_view(), name="api-order"),
    path("account/", api.AccountView.as_view(), name="api-account"),
    path("positions/", api.PositionsView.as_view(), name="api-positions"),
]
