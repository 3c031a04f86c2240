"""The private-network guard's decision, as a pure function; no socket is ever connected here."""

from __future__ import annotations

import socket

import pytest

from ingestor.fetch.guard import (
    GUARD_MARK,
    GuardRefused,
    host_refusal,
    is_ip_literal,
    parse_networks,
    refusal,
    socket_factory,
)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved; Python files 240/4 under private too
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "6to4 of loopback"),
        ("64:ff9b::a00:1", "nat64 of private"),
        ("64:ff9b::a9fe:a9fe", "nat64 of link-local"),  # NAT64 of 169.254.169.254
        ("2002:a9fe:a9fe::1", "6to4 of link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fec0::1", "site-local"),  # deprecated site-local (RFC 3879), issue 13
        ("fec0:1:2:3::5", "site-local"),
        ("feff::1", "site-local"),
        ("fc00::1", "private"),
        ("192.0.0.1", "not globally routable"),  # IETF protocol assignments
        ("192.0.0.9", "not globally routable"),
        ("192.88.99.1", "not globally routable"),  # deprecated 6to4 relay anycast
        ("198.18.0.1", "private"),  # benchmarking
        ("198.19.255.255", "private"),
        ("255.255.255.255", "private"),
        ("3fff::1", "not globally routable"),  # documentation (RFC 9637)
        ("2001:db8::1", "private"),
        ("64:ff9b:1::1", "not globally routable"),  # local-use NAT64
        ("100::1", "private"),  # discard-only
        ("not-an-ip", "not an IP address"),
    ],
)
def test_refused(address: str, reason: str) -> None:
    assert refusal(address, allow_private=False) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_allowed(address: str) -> None:
    assert refusal(address, allow_private=False) is None


def test_allow_private_lets_everything_through() -> None:
    for address in ("127.0.0.1", "10.0.0.1", "::1", "169.254.169.254"):
        assert refusal(address, allow_private=True) is None


def test_allowed_networks_are_exempt() -> None:
    allowed = parse_networks(["10.20.0.0/16", "fd12::/16"])
    assert refusal("10.20.3.4", allow_private=False, allowed=allowed) is None
    assert refusal("10.21.3.4", allow_private=False, allowed=allowed) == "private"
    assert refusal("fd12::5", allow_private=False, allowed=allowed) is None


def test_socket_factory_refuses_before_creating_a_socket() -> None:
    create = socket_factory(allow_private=False)
    with pytest.raises(GuardRefused) as info:
        create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    assert isinstance(info.value, OSError) and GUARD_MARK in str(info.value)
    assert info.value.reason == "loopback"
    # an allowed address gets an unconnected socket of the requested family (no packet sent)
    sock = socket_factory(allow_private=True)((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    try:
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "loopback"),  # RFC 6761: whatever a resolver says
        ("LOCALHOST.", "loopback"),
        ("metadata.localhost", "loopback"),
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.0.0.5", "private"),
        ("fec0::1", "site-local"),
        ("[fec0::1]", "site-local"),
        ("feeds.example.com", None),  # a name: resolved by the caller, each address checked
        ("1.1.1.1", None),
    ],
)
def test_host_refusal_before_lookup(host: str, reason: str | None) -> None:
    """What a proxied target earns before any DNS: the proxy, not we, would dial it."""
    assert host_refusal(host, allow_private=False) == reason
    assert host_refusal(host, allow_private=True) is None


def test_host_refusal_honours_allowed_networks() -> None:
    allowed = parse_networks(["10.0.0.0/24"])
    assert host_refusal("10.0.0.5", allow_private=False, allowed=allowed) is None
    assert host_refusal("localhost", allow_private=False, allowed=allowed) == "loopback"


def test_ip_literals() -> None:
    assert is_ip_literal("10.0.0.5") and is_ip_literal("[::1]") and is_ip_literal("fe80::1%eth0")
    assert not is_ip_literal("localhost") and not is_ip_literal("example.com")
