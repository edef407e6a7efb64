from django.urls import path

from .consumers import TradeUpdatesConsumer

websocket_urlpatterns = [path("alpaca/stream", TradeUpdatesConsumer.as_asgi())]
