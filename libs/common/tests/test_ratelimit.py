"""Who a per-IP limit counts: the peer, or the right-most untrusted X-Forwarded-For hop."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from starlette.requests import Request

from terrascale.common.ratelimit import Network, client_ip

GATEWAY: list[Network] = [ip_network("10.0.0.0/8")]


def _request(peer: str, *forwarded_for: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        pytest.param("198.51.100.7", ("203.0.113.1",), [], "198.51.100.7", id="untrusted-peer"),
        pytest.param("10.0.0.2", ("203.0.113.1",), GATEWAY, "203.0.113.1", id="via-gateway"),
        pytest.param(
            "10.0.0.2", ("1.2.3.4, 203.0.113.1",), GATEWAY, "203.0.113.1", id="spoofed-left-hop"
        ),
        pytest.param(
            "10.0.0.2", ("203.0.113.1, 10.0.0.9",), GATEWAY, "203.0.113.1", id="two-proxies"
        ),
        pytest.param("10.0.0.2", ("1.2.3.4", "203.0.113.1"), GATEWAY, "203.0.113.1", id="repeated"),
        pytest.param("10.0.0.2", (), GATEWAY, "10.0.0.2", id="no-header"),
        pytest.param("10.0.0.2", ("junk, 10.0.0.3",), GATEWAY, "10.0.0.3", id="malformed-hop"),
        pytest.param("2001:db8:1:2:3:4:5:6", (), [], "2001:db8:1:2::/64", id="ipv6-by-its-64"),
        pytest.param("::ffff:198.51.100.7", (), [], "198.51.100.7", id="ipv4-mapped"),
    ],
)
def test_client_ip(
    peer: str, forwarded_for: tuple[str, ...], trusted: list[Network], expected: str
) -> None:
    assert client_ip(_request(peer, *forwarded_for), trusted) == expected
