"""The whole OpenAPI schema generates, validates, and names every public endpoint."""

import io

import yaml
from django.core.management import call_command


def test_the_schema_validates_without_warnings_and_lists_the_api():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    paths = yaml.safe_load(out.getvalue())["paths"]
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/broker-accounts/",
        "/api/v1/account/",
        "/api/v1/positions/",
        "/api/v1/positions/history/",
        "/api/v1/orders/",
        "/api/v1/orders/validate/",
        "/api/v1/orders/{order_id}/",
        "/api/v1/orders/sync/",
        "/api/v1/market/quotes/latest/",
        "/api/v1/market/bars/",
    ]:
        assert path in paths, path
    quote = paths["/api/v1/market/quotes/latest/"]["get"]["responses"]["200"]
    assert "$ref" in str(quote)  # a described body, not a bare object
