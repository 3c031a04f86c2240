"""The WebSub rules that need no I/O: where a feed names its hub, how a push is authenticated,
which verification requests we confirm, how long a lease may be, and what counts as a replay.

Everything a hub or a stranger sends us is hostile input here: the callback is a public URL,
so anyone can GET or POST to it.  The rules below are what keeps such a request from
switching a subscription on or off, or from putting content into news.raw:

* a subscription's pushes are signed with a secret of its own (``hub.secret``), fresh for
  every subscribe request; a push without a valid ``X-Hub-Signature`` is never content;
* every subscribe/unsubscribe request carries a random token in its callback path, and a
  verification GET is confirmed only for a token we are waiting on, with the same mode and
  topic (:func:`verification_ok`);
* a granted lease is clamped (:func:`parse_lease`): ``inf``, ``nan``, negative or
  non-numeric values are refused, so no request can make a subscription last for ever;
* a body already seen among the feed's last few bodies is not new (:func:`seen`), so a
  captured, correctly signed push cannot be replayed to revert a story.

Discovery looks where the spec says publishers put it: HTTP ``Link`` headers first, then
``<link>`` elements (Atom ``link``, RSS ``atom:link``, HTML ``link``) near the top of the
document.  The element scan is linear in the bytes scanned (``str.find`` forward only, every
tag bounded), because it runs on the event loop for every polled body while WebSub is on.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import unescape
from typing import Literal

from yarl import URL

Mode = Literal["subscribe", "unsubscribe"]

_SCAN_BYTES = 64 * 1024
_MAX_TAG_BYTES = 4096  # a <link> element longer than this is not a hub announcement
_MAX_LINK_TAGS = 200  # hubs are announced near the top; a page of 10k links is not scanned on
_LINK_START = re.compile(rb"<(?:[a-z0-9_.-]{1,32}:)?link(?=[\s/>])")  # on lower-cased bytes
# one attribute per match; every alternative consumes what it scans, so finditer stays linear
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
# Link headers (~1 MB at most: aiohttp admits 128 header lines of 8 KB, and the fetcher
# joins the Link values) are read with finditer, which retries at every offset.  A target
# holds no "<" (RFC 8288: a URI-Reference), so a "<" with no ">" after it stops at the next
# "<" instead of rescanning the rest of the header (``[^>]*`` made a header of "<" n**2:
# 64 KB took 13 s).  A parameter name starts only where its run of name characters
# starts: from anywhere inside a long run without "=" the same run was read again to its
# end (n**2: 16 KB took 1.7 s).  Both read the same parameters as before on every header
# whose targets hold no "<".
_LINK_VALUE = re.compile(r"<([^<>]*)>\s*((?:;\s*[^;,]+)*)")
_PARAM = re.compile(r"""(?<![A-Za-z*-])([A-Za-z*-]+)\s*=\s*(?:"([^"]*)"|([^\s;,]+))""")
_LEASE = re.compile(r"^\s*(\d{1,15})(?:\.\d{0,9})?\s*$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
_DISCOVERED = frozenset(("hub", "self"))
BODY_KEY_CHARS = 32  # 128 bits of the body's SHA-256: enough to recognise a body, half the bytes


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


def _link_tags(head: bytes) -> Iterable[bytes]:
    """The attribute text of each ``<link ...>`` / ``<prefix:link ...>`` element, in order.

    Forward-only: each search starts where the previous tag ended (the start pattern looks at
    most 40 bytes ahead of a ``<``), and a ``<link`` with no ``>`` after it ends the scan (no
    later tag could close either), so 64 KB cost a few passes over 64 KB whatever they hold.
    """
    lower = head.lower()
    pos = 0
    for _ in range(_MAX_LINK_TAGS):
        match = _LINK_START.search(lower, pos)
        if match is None:
            return
        end = lower.find(b">", match.end())
        if end < 0:
            return
        pos = end + 1
        if end - match.end() <= _MAX_TAG_BYTES:
            yield head[match.end() : end]


def _attributes(tag: bytes) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for attr in _ATTR.finditer(tag.decode("utf-8", "replace")):
        raw = next((g for g in attr.groups()[1:] if g is not None), "")
        attrs.setdefault(attr.group(1).lower(), unescape(raw))
    return attrs


def body_link_rels(body: bytes | None, base: str, wanted: frozenset[str] | None = None) -> dict[str, str]:
    """``rel -> absolute URL`` from the ``<link>`` elements of the first 64 KB of a document;
    with ``wanted``, only those rels, and the scan stops once all of them were found."""
    found: dict[str, str] = {}
    needles = tuple(rel.encode() for rel in wanted) if wanted is not None else ()
    for tag in _link_tags((body or b"")[:_SCAN_BYTES]):
        if needles and not any(needle in tag.lower() for needle in needles):
            continue  # stylesheets, alternates: not worth decoding
        attrs = _attributes(tag)
        href = attrs.get("href")
        if not href:
            continue
        for rel in attrs.get("rel", "").lower().split():
            if rel in found or (wanted is not None and rel not in wanted):
                continue
            url = _absolute(href, base)
            if url is not None:
                found[rel] = url
        if wanted is not None and len(found) == len(wanted):
            break
    return found


def discover(link_header: str | None, body: bytes | None, base: str) -> Discovery:
    """The hub and self URL a feed advertises; headers win over the document."""
    rels = {**body_link_rels(body, base, _DISCOVERED), **link_header_rels(link_header, base)}
    return Discovery(hub=rels.get("hub"), self_url=rels.get("self"))


# --- secrets and tokens -------------------------------------------------------------------


def new_token() -> str:
    """The random path segment of one subscribe/unsubscribe request's callback (128 bits)."""
    return secrets.token_hex(16)


def token_ok(token: str) -> bool:
    """A callback path segment of the shape :func:`new_token` makes; anything else is not ours."""
    return _TOKEN.match(token) is not None


def new_nonce() -> str:
    return secrets.token_hex(32)


def subscription_secret(key: str | None, feed_id: str, nonce: str) -> str:
    """The ``hub.secret`` of one subscription.

    With an operator key (``fetch.websub.secret``) it is derived: HMAC(key, feed id, nonce),
    and only the nonce is persisted, so a reader of the fetch-state topic cannot sign pushes.
    Without one, the nonce itself (256 random bits) is the secret, and is never persisted.
    Either way every subscription has its own: a hub (or a log) that leaks one cannot sign
    pushes for another feed, or for a later subscription of the same feed.
    """
    if not key:
        return nonce
    message = f"websub-subscription\x00{feed_id}\x00{nonce}".encode()
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature: method=hex`` with method sha1/sha256/sha384/sha512, constant-time."""
    if not secret or not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = _ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def sign(secret: str, body: bytes, method: str = "sha256") -> str:
    return f"{method}={hmac.new(secret.encode('utf-8'), body, _ALGORITHMS[method]).hexdigest()}"


# --- verification of intent ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A subscribe/unsubscribe request we sent and whose verification we wait for."""

    mode: Mode
    topic: str
    sent_at: float
    nonce: str | None = None  # subscribe: the subscription's nonce (its secret derives from it)


def verification_ok(*, mode: str | None, topic: str | None, pending: PendingRequest | None) -> bool:
    """Confirm only what we asked for: a request pending under this callback token, with the
    same mode, for the same topic.  Anything else (a stranger's GET, a late verification of a
    request we gave up on) is answered 404 and changes nothing."""
    return pending is not None and mode == pending.mode and topic is not None and topic == pending.topic


def parse_lease(value: str | None, *, requested: float, maximum: float) -> float | None:
    """The lease a verification grants, in seconds, at most ``maximum``; None: refuse it.

    A missing value means the hub granted what we asked for.  Only plain decimal numbers are
    accepted (``float`` would take ``inf``, ``nan``, ``1e400`` and ``-5``); zero is refused,
    anything below a second is rounded up to one, anything above ``maximum`` clamped to it.
    """
    if value is None:
        return max(1.0, min(requested, maximum))
    match = _LEASE.match(value)
    if match is None:
        return None
    lease = float(value)
    if not math.isfinite(lease) or lease <= 0:
        return None
    return max(1.0, min(lease, maximum))


def renew_delay(lease_seconds: float, renew_before: float) -> float:
    """Seconds until the lease is renewed: ``renew_before`` of it ahead of expiry, at least 1 s."""
    return max(1.0, lease_seconds * (1.0 - renew_before))


# --- replays ------------------------------------------------------------------------------


def body_key(sha256_hex: str) -> str:
    """What the replay window keeps of a body: a 128-bit prefix of its SHA-256."""
    return sha256_hex[:BODY_KEY_CHARS].lower()


def seen(recent: Iterable[str], sha256_hex: str) -> bool:
    """Whether a body is one of the feed's recent bodies (a replay, or a duplicate push)."""
    return body_key(sha256_hex) in recent


def remember(recent: Sequence[str], sha256_hex: str, window: int) -> tuple[str, ...]:
    """The window with this body added as the newest, at most ``window`` bodies long."""
    key = body_key(sha256_hex)
    kept = [k for k in recent if k != key]
    kept.append(key)
    return tuple(kept[-window:]) if window > 0 else ()
