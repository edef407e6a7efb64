"""ASGI entry point: HTTP through Django, the broker stream through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradedesk.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gateway.routing import websocket_urlpatterns as gateway_routes  # noqa: E402
from market.stream.routing import BrowserOriginValidator  # noqa: E402
from market.stream.routing import websocket_urlpatterns as market_routes  # noqa: E402

# Assembled here, so neither app imports the other: the desk's stream and the gateway's.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(URLRouter([*market_routes, *gateway_routes])),
    }
)

# Everything loaded so far lives as long as the process: move it out of the cyclic GC's reach,
# so a collection with hundreds of connections open scans only what they allocate.
gc.freeze()
