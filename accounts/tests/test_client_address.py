"""The client's address: X-Forwarded-For counts only through TRUSTED_PROXIES."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIRequestFactory

from accounts.api import TokenThrottle
from tradedesk.client_ip import (
    client_address,
    parse_address,
    resolve_client_address,
    scope_client_address,
)


@pytest.mark.parametrize(
    ("peer", "forwarded"),
    [
        ("198.51.100.7", None),
        ("198.51.100.7", "10.9.9.9"),
        ("198.51.100.7", "10.9.9.9, 127.0.0.1"),
        ("198.51.100.7", "garbage, ,"),
    ],
)
def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says(
    settings, peer, forwarded
):
    settings.TRUSTED_PROXIES = []
    assert resolve_client_address(peer, forwarded) == "198.51.100.7"


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # One proxy: the address it appended is the client.
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        # The client spoofed a header; the proxy appended the real address on the right.
        ("10.0.0.5", "1.2.3.4, 203.0.113.9", "203.0.113.9"),
        # Two proxies in a row are both skipped.
        ("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.6", "203.0.113.9"),
        # A peer that is not a trusted proxy: its header is ignored.
        ("203.0.113.50", "1.2.3.4", "203.0.113.50"),
        # The proxy sent no header: the proxy itself.
        ("10.0.0.5", None, "10.0.0.5"),
        # Ports, brackets and IPv4-mapped IPv6 as servers write them.
        ("10.0.0.5", "203.0.113.9:5123", "203.0.113.9"),
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:10.0.0.5", "203.0.113.9", "203.0.113.9"),
        # Something that is no address where the proxy's hop should be: stop at the proxy.
        ("10.0.0.5", "203.0.113.9, not-an-ip", "10.0.0.5"),
    ],
)
def test_behind_trusted_proxies_the_header_is_walked_from_the_right(
    settings, peer, forwarded, client
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert resolve_client_address(peer, forwarded) == client


def test_an_unknown_peer_has_no_address_and_a_bad_proxy_setting_is_loud(settings):
    assert resolve_client_address(None, "1.2.3.4") == ""
    assert parse_address("not-an-ip") is None
    settings.TRUSTED_PROXIES = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        resolve_client_address("10.0.0.1", None)


def test_requests_and_asgi_scopes_follow_the_same_rule(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    request = APIRequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert client_address(request) == "203.0.113.9"
    scope = {
        "client": ["127.0.0.1", 5555],
        "headers": [(b"x-forwarded-for", b"1.2.3.4"), (b"X-Forwarded-For", b"203.0.113.9")],
    }
    assert scope_client_address(scope) == "203.0.113.9"
    settings.TRUSTED_PROXIES = []
    assert client_address(request) == "127.0.0.1"
    assert scope_client_address(scope) == "127.0.0.1"
    assert scope_client_address({"headers": []}) == ""


def test_the_token_throttle_counts_the_client_address_not_a_spoofed_header(settings):
    settings.TRUSTED_PROXIES = []
    throttle = TokenThrottle()
    factory = APIRequestFactory()
    idents = {
        throttle.get_ident(factory.post("/", HTTP_X_FORWARDED_FOR=f"10.0.{n}.1")) for n in range(40)
    }
    assert idents == {"127.0.0.1"}
