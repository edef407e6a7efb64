"""Reading /metrics as Prometheus does: through the client library's own parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(found: dict, name: str, **labels) -> float:
    """A sample's value by its name (`..._total`, `..._count`), 0 when the series does not
    exist yet (a counter not yet counted)."""
    for family in found.values():
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return item.value
    return 0.0


def moved(before: dict, after: dict, name: str, **labels) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


@pytest.fixture
def scrape(client):
    """GET /metrics from loopback (the test client's address) and parse it."""

    def get(**headers) -> dict:
        response = client.get("/metrics", **headers)
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        return families(response.content.decode())

    return get
