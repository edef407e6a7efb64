"""Static files are served by the app itself (WhiteNoise), under WSGI and ASGI alike."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import AsyncClient, Client


@pytest.fixture
def collected(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    return settings.STATIC_ROOT


@pytest.mark.django_db
def test_the_desk_serves_its_static_files_with_the_security_headers(collected):
    response = Client().get("/static/css/desk.css")  # a fresh handler: WhiteNoise scans anew

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == (collected / "css" / "desk.css").read_bytes()
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still applies


@pytest.mark.django_db(transaction=True)
async def test_the_embedded_server_path_serves_them_too(collected):
    """The embedded run serves HTTP through ASGI, where WhiteNoise sits last in the chain."""
    response = await AsyncClient().get(
        "/static/vendor/lightweight-charts/lightweight-charts.standalone.production.js"
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
