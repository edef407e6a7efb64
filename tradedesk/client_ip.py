"""The client's address: the one rule that throttles, allowlists and logs all use.

`X-Forwarded-For` is believed only as far as `TRUSTED_PROXIES` (CIDR list, empty by default)
vouch for it: the peer that connected must be a trusted proxy for its header to count, and the
header is walked from the right (each proxy appends the address it saw), skipping trusted
proxies; the first address that is not one is the client. With no trusted proxies the peer's
own address (REMOTE_ADDR, or the ASGI scope's client) is the client, whatever the header says.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import AnonRateThrottle

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str | None) -> IPAddress | None:
    """An address as proxies and servers write it (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`,
    `::ffff:1.2.3.4`), IPv4-mapped IPv6 as IPv4; None when it is not an address."""
    text = (text or "").strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    """CIDR entries (a bare address is its own /32 or /128); ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry.strip()!r} is not an IP address or CIDR network") from None
    return networks


@functools.lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(parse_networks(entries))
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from None


def _is_trusted(address: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def resolve_client_address(peer: str | None, forwarded_for: str | None) -> str:
    """The client's address from the connecting peer and its X-Forwarded-For header ("" when
    the peer is unknown, e.g. a Unix socket)."""
    address = parse_address(peer)
    if address is None:
        return ""
    proxies = _trusted(tuple(settings.TRUSTED_PROXIES))
    hops = [hop for hop in (forwarded_for or "").split(",") if hop.strip()]
    while _is_trusted(address, proxies) and hops:
        previous = parse_address(hops.pop())
        if previous is None:  # a proxy wrote something that is no address: stop at the proxy
            break
        address = previous
    return str(address)


def client_address(request) -> str:
    """The client's address for a Django (or DRF) request."""
    meta = request.META
    return resolve_client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def scope_client_address(scope) -> str:
    """The client's address for an ASGI scope (the stream)."""
    client = scope.get("client") or (None,)
    forwarded = b",".join(
        value for name, value in scope.get("headers", ()) if name.lower() == b"x-forwarded-for"
    )
    return resolve_client_address(client[0], forwarded.decode("latin1"))


class ClientAddressThrottle(AnonRateThrottle):
    """DRF's anonymous throttle keyed by the desk's client address (DRF's own get_ident trusts
    the whole X-Forwarded-For header, or a proxy count, instead of TRUSTED_PROXIES)."""

    def get_ident(self, request) -> str:
        return client_address(request)
