"""Failure classification: statuses, bot walls, not-a-feed bodies, exceptions, transience."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from ingestor.fetch.guard import GuardRefused
from ingestor.fetch.http import classify_exception
from ingestor.fetch.outcome import (
    Outcome,
    bot_wall,
    classify_status,
    dns_transient,
    not_a_feed,
    retry_in_fetch,
    settle,
    starts_as_html,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (203, Outcome.OK),
        (304, Outcome.NOT_MODIFIED),
        (404, Outcome.HTTP_4XX),
        (410, Outcome.HTTP_4XX),
        (403, Outcome.HTTP_4XX),
        (429, Outcome.HTTP_429),
        (500, Outcome.HTTP_5XX),
        (503, Outcome.HTTP_5XX),
        (302, Outcome.PROTOCOL),  # a redirect without Location
    ],
)
def test_status(status: int, outcome: Outcome) -> None:
    assert classify_status(status)[0] is outcome


def test_transience() -> None:
    assert {o for o in Outcome if o.transient} == {Outcome.CONNECT, Outcome.TIMEOUT, Outcome.HTTP_5XX}
    assert {o for o in Outcome if o.success} == {Outcome.OK, Outcome.NOT_MODIFIED, Outcome.UNCHANGED}
    assert retry_in_fetch(Outcome.HTTP_5XX, 500, None)
    assert not retry_in_fetch(Outcome.HTTP_5XX, 503, 120.0)  # asked to come back later
    assert not retry_in_fetch(Outcome.HTTP_5XX, 501, None)
    assert not retry_in_fetch(Outcome.HTTP_429, 429, None)
    assert not retry_in_fetch(Outcome.HTTP_4XX, 404, None)
    assert dns_transient(socket.EAI_AGAIN)
    assert not dns_transient(socket.EAI_NONAME)


def test_settle_by_body_hash() -> None:
    assert settle(Outcome.OK, "a", "a") is Outcome.UNCHANGED
    assert settle(Outcome.OK, "a", "b") is Outcome.OK
    assert settle(Outcome.OK, "a", None) is Outcome.OK
    assert settle(Outcome.NOT_MODIFIED, None, "a") is Outcome.NOT_MODIFIED


CLOUDFLARE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<script>window._cf_chl_opt={cvId: '3'};</script></head><body>
<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script></body></html>"""


def test_bot_walls() -> None:
    assert bot_wall({}, CLOUDFLARE) == "cloudflare challenge"
    assert bot_wall({"cf-mitigated": "challenge"}, b"") == "cloudflare challenge"
    assert (
        bot_wall({}, b"<html><body>DDoS-Guard checking your browser</body></html>") == "ddos-guard challenge"
    )
    assert bot_wall({}, b"<?xml version='1.0'?><rss><channel><title>cf</title></channel></rss>") is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/rss+xml", b"<?xml version='1.0'?>\n<rss version='2.0'><channel/></rss>"),
        ("text/xml", b"\xef\xbb\xbf  <feed xmlns='http://www.w3.org/2005/Atom'></feed>"),
        ("application/xml", b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"),
        ("application/feed+json", b'{"version": "https://jsonfeed.org/version/1.1", "items": []}'),
        ("text/html", b"<?xml version='1.0'?><rss><channel/></rss>"),  # a wrong type, a real feed
    ],
)
def test_feeds_pass(content_type: str, body: bytes) -> None:
    assert not_a_feed(content_type, body) is None


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/html", b"<!DOCTYPE html><html><body>Oops, 404</body></html>", "html page served as a feed"),
        ("application/rss+xml", b"  <!-- x --><html><head></head></html>", "html page served as a feed"),
        ("text/html", b"Service temporarily unavailable", "html page served as a feed"),
        ("application/xml", b"<error><code>500</code></error>", "xml without a feed root element"),
        ("application/octet-stream", b"\x89PNG\r\n", "not a feed (application/octet-stream)"),
        (None, b"   ", "empty body"),
    ],
)
def test_not_feeds(content_type: str | None, body: bytes, reason: str) -> None:
    assert not_a_feed(content_type, body) == reason


@pytest.mark.timeout(10)
def test_a_run_of_comments_is_scanned_not_backtracked() -> None:
    """Up to 16 KiB of ``<!-- -->`` leading nowhere: the regex this replaced took minutes at 200."""
    for tail, reason in (
        (b"x", "xml without a feed root element"),
        (b"<rss version='2.0'>", None),
        (b"<!-- never closed <html>", "xml without a feed root element"),
        (b"\n <HTML lang=en>", "html page served as a feed"),
    ):
        assert not_a_feed("application/rss+xml", b"<!-- -->" * 2040 + tail) == reason
    assert starts_as_html(b"<!-- a --> <!-- b -->\n<!doctype  HTML>")
    assert not starts_as_html(b"<!-- a --> x <html>")
    assert not starts_as_html(b"<!-- a -- > <html>")


KEY = ConnectionKey("feed.example", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "outcome", "transient"),
    [
        (aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(socket.EAI_NONAME, "Unknown name")),
         Outcome.DNS, False),
        (aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(socket.EAI_AGAIN, "Temporary failure")),
         Outcome.DNS, True),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused")),
         Outcome.CONNECT, True),
        (aiohttp.ClientConnectorError(KEY, GuardRefused("10.0.0.1", "private")), Outcome.BLOCKED, False),
        (aiohttp.ClientConnectorError(KEY, OSError("Multiple exceptions: private-network guard refused ...")),
         Outcome.BLOCKED, False),
        (aiohttp.ClientConnectorCertificateError(KEY, Exception("self-signed")), Outcome.TLS, False),
        (aiohttp.ClientConnectorSSLError(KEY, OSError("handshake failure")), Outcome.TLS, False),
        (aiohttp.ConnectionTimeoutError("connect"), Outcome.TIMEOUT, True),
        (aiohttp.SocketTimeoutError("read"), Outcome.TIMEOUT, True),
        (TimeoutError(), Outcome.TIMEOUT, True),
        (aiohttp.ServerDisconnectedError(), Outcome.CONNECT, True),
        (aiohttp.ClientPayloadError("Response payload is not completed"), Outcome.CONNECT, True),
        (aiohttp.ClientPayloadError("Can not decode content-encoding: gzip"), Outcome.PROTOCOL, False),
        (ValueError("a bug"), Outcome.ERROR, False),
    ],
)  # fmt: skip
def test_exceptions(exc: BaseException, outcome: Outcome, transient: bool) -> None:
    got, reason, retry = classify_exception(exc)
    assert (got, retry) == (outcome, transient)
    assert reason
