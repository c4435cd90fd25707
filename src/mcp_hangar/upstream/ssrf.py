"""The SSRF guard for ``remote`` endpoints registered through the REST API."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from urllib.parse import urlsplit

from ..errors import ValidationError


def check_endpoint_address(endpoint: str, trusted: list[str]) -> None:
    """Refuse endpoints that resolve to private, loopback or link-local addresses (SSRF), unless trusted."""
    host = urlsplit(endpoint).hostname
    if not host:
        raise ValidationError(f"endpoint has no host: {endpoint!r}")
    networks = []
    for net in trusted:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(net, strict=False))
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ValidationError(f"cannot resolve endpoint host {host!r}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if any(address in net for net in networks):
            continue
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved \
                or address.is_multicast or address.is_unspecified:
            raise ValidationError(
                f"endpoint {endpoint!r} resolves to {address}, a private, loopback or link-local address; "
                "add its network to ssrf.trusted_networks to allow it")
