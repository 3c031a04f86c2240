"""What a fetch came to, in a small closed vocabulary.

Every fetch ends in exactly one ``Outcome`` so that logs, metrics, the schedule and the
retry policy all speak the same language.  Whether an outcome is worth retrying within the
same fetch (``transient``) is decided here and nowhere else.
"""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Mapping
from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"  # a new body (produced)
    NOT_MODIFIED = "not_modified"  # 304
    UNCHANGED = "unchanged"  # 200 with the body sha256 seen last time
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_4XX = "http_4xx"
    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    TOO_LARGE = "too_large"
    REDIRECT_LOOP = "redirect_loop"
    NOT_A_FEED = "not_a_feed"  # bot wall, challenge page, HTML error page where a feed belongs
    BLOCKED = "blocked"  # refused by the private-network guard
    PROTOCOL = "protocol"  # a malformed response: bad encoding, broken framing
    PRODUCE_FAILED = "produce_failed"  # fetched fine, but the broker did not acknowledge
    SECRET = "secret"  # a credential reference could not be resolved; nothing was sent
    ERROR = "error"  # a bug or something unforeseen; logged with its type, never fatal

    @property
    def success(self) -> bool:
        """The feed answered as a feed should; resets the failure backoff."""
        return self in _SUCCESS

    @property
    def transient(self) -> bool:
        """Worth another attempt within the same fetch (tenacity)."""
        return self in _TRANSIENT


_SUCCESS = frozenset({Outcome.OK, Outcome.NOT_MODIFIED, Outcome.UNCHANGED})
# 429 is not here: a server asking us to slow down gets its Retry-After via the schedule,
# not a volley of immediate retries.  DNS is decided per error (see dns_transient).
_TRANSIENT = frozenset({Outcome.CONNECT, Outcome.TIMEOUT, Outcome.HTTP_5XX})


def classify_status(status: int) -> tuple[Outcome, str | None]:
    """Outcome of an HTTP status once redirects have been followed."""
    if status == 304:
        return Outcome.NOT_MODIFIED, None
    if 200 <= status < 300:
        return Outcome.OK, None
    if status == 429:
        return Outcome.HTTP_429, "too many requests"
    if status >= 500:
        return Outcome.HTTP_5XX, f"server error {status}"
    if 400 <= status < 500:
        return Outcome.HTTP_4XX, f"client error {status}"
    return Outcome.PROTOCOL, f"unexpected status {status}"


def retry_in_fetch(outcome: Outcome, status: int | None, retry_after: float | None) -> bool:
    """A 5xx that names a Retry-After is a request to come back later, not now."""
    if outcome is Outcome.HTTP_5XX and retry_after is not None:
        return False
    if outcome is Outcome.HTTP_5XX and status == 501:
        return False
    return outcome.transient


def dns_transient(error_number: int | None) -> bool:
    """NXDOMAIN will not heal in a second; a resolver hiccup (EAI_AGAIN) may."""
    return error_number in {socket.EAI_AGAIN, errno.EAGAIN} if error_number is not None else False


def settle(outcome: Outcome, body_sha256: str | None, last_sha256: str | None) -> Outcome:
    """A 200 whose body hashes to what we saw last time is ``unchanged``: the body-hash backstop
    for servers that ignore conditional GET."""
    if outcome is Outcome.OK and body_sha256 is not None and body_sha256 == last_sha256:
        return Outcome.UNCHANGED
    return outcome


# --- not a feed -------------------------------------------------------------------------

_CHALLENGE_MARKERS: tuple[tuple[bytes, str], ...] = (
    (b"cf-chl-", "cloudflare challenge"),
    (b"cf_chl_opt", "cloudflare challenge"),
    (b"/cdn-cgi/challenge-platform/", "cloudflare challenge"),
    (b"<title>just a moment...</title>", "cloudflare challenge"),
    (b"attention required! | cloudflare", "cloudflare block page"),
    (b"ddos-guard", "ddos-guard challenge"),
    (b"_incapsula_resource", "incapsula challenge"),
    (b"px-captcha", "perimeterx captcha"),
    (b"captcha-delivery.com", "datadome captcha"),
    (b"awswaf", "aws waf challenge"),
)
_SNIFF_BYTES = 16 * 1024
_XML_FEED_ROOT = re.compile(rb"<(?:[a-z0-9_-]+:)?(rss|feed|rdf)\b", re.IGNORECASE)
_SPACE = re.compile(rb"\s*")
_HTML_TAG = re.compile(rb"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)


def starts_as_html(head: bytes) -> bool:
    """Whether ``head`` opens as an HTML page, after whitespace and comments.

    A scan, not one regex: ``(?:<!--.*?-->\\s*)*`` backtracks exponentially on a run of
    comments that leads nowhere (a few hundred ``<!-- -->`` held the fetch loop for minutes).
    Each comment ends at its first ``-->``, as in HTML; the work is linear in ``head``.
    """
    pos = 0
    while True:
        pos = _SPACE.match(head, pos).end()  # type: ignore[union-attr]  # \s* always matches
        if not head.startswith(b"<!--", pos):
            return _HTML_TAG.match(head, pos) is not None
        end = head.find(b"-->", pos + 4)
        if end < 0:
            return False
        pos = end + 3


def bot_wall(headers: Mapping[str, str], body: bytes) -> str | None:
    """The name of the bot wall this response is, if it is one.

    Such pages are never the news, whatever format the feed is configured as, so they are
    recognised for every feed (and whatever the status: challenges come as 200, 403 or 503).
    """
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return "cloudflare challenge"
    head = body[:_SNIFF_BYTES].lower()
    for marker, name in _CHALLENGE_MARKERS:
        if marker in head:
            return name
    return None


def not_a_feed(content_type: str | None, body: bytes) -> str | None:
    """Why a body configured as a feed (``format: feed``) is not one, or None if it plausibly is.

    Deliberately lenient about what *is* a feed (the parser has the last word); strict only
    about what clearly is not: HTML pages, empty bodies, binary junk.
    """
    head = body[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return "empty body"
    if head.startswith((b"{", b"[")):
        return None  # JSON Feed
    if starts_as_html(head):
        return "html page served as a feed"
    if _XML_FEED_ROOT.search(head):
        return None
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "text/html":
        return "html page served as a feed"
    if head.startswith(b"<"):
        return "xml without a feed root element"
    return f"not a feed ({mime or 'no content type'})"
