"""WebSocket routes, and the Origin check in front of them."""

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from .consumers import MarketStreamConsumer

websocket_urlpatterns = [
    path("api/v1/broker/stream", MarketStreamConsumer.as_asgi()),
]


class BrowserOriginValidator(OriginValidator):
    """Browsers must come from an allowed host; API clients, which send no Origin, may connect.

    The Origin check stops cross-site pages from riding a browser's credentials; the stream
    authenticates with a token in the URL, and a client without Origin is not a browser.
    """

    def __init__(self, application):
        super().__init__(application, settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)
