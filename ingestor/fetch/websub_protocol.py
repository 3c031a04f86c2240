"""The WebSub rules that need no I/O: where a feed names its hub, how a push is authenticated,
and what a hub's verification request must say before we confirm it.

Discovery looks where the spec says publishers put it: HTTP ``Link`` headers first, then
``<link>`` elements (Atom ``link``, RSS ``atom:link``, HTML ``link``) near the top of the
document.  Signature checks are constant-time; a push without a valid signature is never
treated as content when a secret was given to the hub.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from html import unescape

from yarl import URL

_SCAN_BYTES = 64 * 1024
_LINK_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?link\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(rb"""([A-Za-z_:][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>/]+))""")
_LINK_VALUE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_PARAM = re.compile(r"""([A-Za-z*-]+)\s*=\s*(?:"([^"]*)"|([^\s;,]+))""")
_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True, slots=True)
class Discovery:
    hub: str | None
    self_url: str | None


def _absolute(href: str, base: str) -> str | None:
    try:
        url = URL(base).join(URL(href.strip()))
    except ValueError:
        return None
    return str(url) if url.scheme in ("http", "https") and url.host else None


def link_header_rels(value: str | None, base: str) -> dict[str, str]:
    """``rel -> absolute URL`` from one or more Link header values (RFC 8288), first one wins."""
    found: dict[str, str] = {}
    for match in _LINK_VALUE.finditer(value or ""):
        target, params = match.group(1), match.group(2)
        for param in _PARAM.finditer(params):
            if param.group(1).lower() != "rel":
                continue
            for rel in (param.group(2) or param.group(3) or "").lower().split():
                url = _absolute(target, base)
                if url is not None:
                    found.setdefault(rel, url)
    return found


def body_link_rels(body: bytes | None, base: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for tag in _LINK_TAG.finditer((body or b"")[:_SCAN_BYTES]):
        attrs: dict[str, str] = {}
        for attr in _ATTR.finditer(tag.group(1)):
            raw = attr.group(2) if attr.group(2) is not None else attr.group(3) or attr.group(4) or b""
            attrs[attr.group(1).decode("ascii", "replace").lower()] = unescape(raw.decode("utf-8", "replace"))
        href = attrs.get("href")
        if not href:
            continue
        for rel in attrs.get("rel", "").lower().split():
            url = _absolute(href, base)
            if url is not None:
                found.setdefault(rel, url)
    return found


def discover(link_header: str | None, body: bytes | None, base: str) -> Discovery:
    """The hub and self URL a feed advertises; headers win over the document."""
    rels = {**body_link_rels(body, base), **link_header_rels(link_header, base)}
    return Discovery(hub=rels.get("hub"), self_url=rels.get("self"))


def feed_secret(secret: str, feed_id: str) -> str:
    """A secret per subscription, derived from the configured one: a hub that leaks one feed's
    secret cannot sign pushes for another feed."""
    return hmac.new(secret.encode("utf-8"), feed_id.encode("utf-8"), hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature: method=hex`` with method sha1/sha256/sha384/sha512."""
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = _ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    return f"{method}={hmac.new(secret.encode('utf-8'), body, _ALGORITHMS[method]).hexdigest()}"


def verification_ok(
    *, mode: str | None, topic: str | None, expected_mode: str | None, expected_topic: str | None
) -> bool:
    """Confirm only what we asked for: the same mode, for the same topic."""
    return mode is not None and mode == expected_mode and topic is not None and topic == expected_topic


def renew_delay(lease_seconds: float, renew_before: float) -> float:
    """Seconds until the lease is renewed: ``renew_before`` of it ahead of expiry, at least 1 s."""
    return max(1.0, lease_seconds * (1.0 - renew_before))
