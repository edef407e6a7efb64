"""Rate limits of order placement and tokens; the OpenAPI schema and its offline docs page."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts.api import TokenThrottle
from orders.models import Order

pytestmark = pytest.mark.django_db

ORDER = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market"}


def test_the_order_after_the_limit_is_429_with_retry_after(settings, api, other_api):
    settings.ORDER_COMMAND_RATES = settings.ORDER_COMMAND_RATES | {"place": "2/min"}

    statuses = [api.post("/api/v1/orders/", ORDER, format="json").status_code for _ in range(3)]
    throttled = api.post("/api/v1/orders/", ORDER, format="json")

    assert statuses == [201, 201, 429]
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert throttled.json()["code"] == "rate_limited"
    assert "try again in" in throttled.json()["detail"]
    assert Order.objects.count() == 2
    # Per user: someone else still places orders, and reading is never throttled.
    assert other_api.post("/api/v1/orders/", ORDER, format="json").status_code == 201
    assert api.get("/api/v1/orders/").status_code == 200


def test_the_token_after_the_limit_is_429_with_retry_after(monkeypatch, trader):
    monkeypatch.setattr(TokenThrottle, "THROTTLE_RATES", {"token": "3/min"})
    client = APIClient()
    credentials = {"username": "alice", "password": "wrong"}

    statuses = [client.post("/api/v1/auth/token/", credentials).status_code for _ in range(4)]
    response = client.post("/api/v1/auth/token/", credentials)

    assert statuses == [401, 401, 401, 429]
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


ORDER_PATHS = {
    "/api/v1/orders/": {"get", "post"},
    "/api/v1/orders/validate/": {"post"},
    "/api/v1/orders/{order_id}/": {"get", "patch", "delete"},
}


def test_the_schema_describes_every_order_endpoint_with_its_errors(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    for path, methods in ORDER_PATHS.items():
        assert set(schema["paths"][path]) >= methods
    post = schema["paths"]["/api/v1/orders/"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OrderBodyRequest"
    )
    assert set(post["responses"]) >= {"200", "201", "400", "404", "409", "429", "503"}
    assert set(schema["paths"]["/api/v1/orders/{order_id}/"]["patch"]["responses"]) >= {
        "200",
        "400",
        "404",
        "422",
        "503",
    }
    list_parameters = {p["name"] for p in schema["paths"]["/api/v1/orders/"]["get"]["parameters"]}
    assert list_parameters >= {"status", "symbol", "side", "after", "before", "cursor"}


def schema_generation_problems(*mentioning: str) -> list[str]:
    """drf-spectacular's warnings and errors, generating the whole schema, that mention any of
    `mentioning`."""
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    return [
        message
        for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if any(needle in message for needle in mentioning)
    ]


def test_the_schema_of_the_order_endpoints_generates_without_warnings():
    assert schema_generation_problems("orders/", "Order", "Enum") == []


def test_the_docs_page_works_offline(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    hosts = set(re.findall(r"https?://([^/\"'\s]+)", page))
    assert hosts <= {"testserver"}, hosts
