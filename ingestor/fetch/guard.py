"""The private-network guard: a hostile feed must not make us talk to our own network.

Checked at connect time on the address actually dialled (an aiohttp ``socket_factory``
runs for every socket, after DNS, before ``connect``), so DNS rebinding, redirects to
internal hosts and IP literals in any spelling all meet the same check, and a refused
address never sees a packet.  The decision itself (``refusal``) is a pure function.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Text every guard refusal carries, so the refusal stays recognisable even when the
#: happy-eyeballs layer folds several per-address errors into one plain OSError.
GUARD_MARK = "private-network guard"


class GuardRefused(ConnectionRefusedError):
    """Raised before connect(); subclassing OSError keeps aiohttp's error path intact."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{GUARD_MARK} refused {address} ({reason})")
        self.address = address
        self.reason = reason


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def refusal(
    address: str | IPAddress, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()
) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is allowed."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1, 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) all reach IPv4 space.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            inner = ip.sixtofour
            inner_reason = refusal(inner, allow_private=allow_private, allowed=allowed)
            if inner_reason:
                return f"6to4 of {inner_reason}"
        elif ip in _NAT64:
            inner4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            inner_reason = refusal(inner4, allow_private=allow_private, allowed=allowed)
            if inner_reason:
                return f"nat64 of {inner_reason}"
            return None
    if any(ip in network for network in allowed if network.version == ip.version):
        return None
    reason = _category(ip)
    if reason is None or allow_private:
        return None
    return reason


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def host_refusal(host: str, *, allow_private: bool, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """The refusal a host name or IP literal earns before any lookup, or None.

    For targets sent through a proxy, whose address we never dial: ``localhost`` (and
    ``*.localhost``, RFC 6761) is loopback whatever a resolver says; an IP literal is
    decided at once.  Other names are resolved by the caller and each address checked.
    """
    name = host.strip("[]").rstrip(".").lower()
    if allow_private:
        return None
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None
    return refusal(name, allow_private=allow_private, allowed=allowed)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


#: Special-purpose blocks (IANA registries) that the ``ipaddress`` module of some Python
#: versions calls global; the rest of those registries is covered by its properties.
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),  # deprecated (RFC 3879), still routed inside
    (ipaddress.IPv4Network("192.0.0.0/24"), "not globally routable"),  # IETF protocol assignments
    (ipaddress.IPv4Network("192.88.99.0/24"), "not globally routable"),  # 6to4 relay anycast, deprecated
    (ipaddress.IPv6Network("3fff::/20"), "not globally routable"),  # documentation (RFC 9637)
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "not globally routable"),  # local-use NAT64 (RFC 8215)
)


def _category(ip: IPAddress) -> str | None:
    for network, name in _SPECIAL:
        if ip.version == network.version and ip in network:
            return name
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def socket_factory(
    *, allow_private: bool, allowed: Sequence[IPNetwork] = ()
) -> Callable[[AddrInfo], socket.socket]:
    """An aiohttp ``TCPConnector(socket_factory=...)`` that refuses before any packet leaves."""

    def create(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        host = str(sockaddr[0])
        reason = refusal(host, allow_private=allow_private, allowed=allowed)
        if reason is not None:
            raise GuardRefused(host, reason)
        return socket.socket(family=family, type=type_, proto=proto)

    return create
