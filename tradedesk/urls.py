from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tradedesk import health

handler404 = "tradedesk.api.not_found"
handler500 = "tradedesk.api.server_error"

urlpatterns = [
    path("", include("ops.urls")),  # first: /admin/overview/ is not the admin site's
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("orders.api_urls")),
    path("api/v1/", include("market.api_urls")),
    path("api/v1/", include("portfolio.api_urls")),
    path("api/v1/", include("gateway.api_urls")),
    path("api/v1/", include("notifications.api_urls")),
    path("alpaca/", include("gateway.urls")),
    path("accounts/api-keys/", include("gateway.page_urls")),
    path("accounts/notifications/", include("notifications.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("market.urls")),
    path("", include("orders.urls")),
    path("portfolio/", include("portfolio.urls")),
]

admin.site.site_header = "TradeDesk operations"
admin.site.site_title = "TradeDesk admin"
admin.site.index_title = "Operator's console"
