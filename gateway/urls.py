"""/alpaca/v2/...: Alpaca's trading REST paths (alpaca-py appends /v2/... to its url_override)."""

from django.urls import path, re_path

from . import alpaca_api

urlpatterns = [
    path("v2/account", alpaca_api.account),
    path("v2/clock", alpaca_api.clock),
    path("v2/calendar", alpaca_api.calendar_days),
    path("v2/assets", alpaca_api.assets),
    path("v2/assets/<str:symbol>", alpaca_api.asset),
    path("v2/orders", alpaca_api.orders_collection),
    path("v2/orders:by_client_order_id", alpaca_api.order_by_client_id),
    path("v2/orders/<str:order_id>", alpaca_api.order_detail),
    path("v2/positions", alpaca_api.positions_collection),
    path("v2/positions/<str:symbol>", alpaca_api.position_detail),
    re_path(r"^(?P<path>.*)$", alpaca_api.not_found),
]
