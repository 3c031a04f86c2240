"""WebSub's pure rules: hub discovery, push signatures, verification, lease renewal."""

from __future__ import annotations

from ingestor.fetch.websub_protocol import (
    discover,
    feed_secret,
    link_header_rels,
    renew_delay,
    sign,
    signature_ok,
    verification_ok,
)

BASE = "https://news.example/feeds/world.xml"


def test_atom_links_are_found_and_made_absolute() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
      <link rel='self' href="/feeds/world.xml" /><link href="https://hub.example/" rel="hub"/>
      <link rel="alternate" href="https://news.example/"/></feed>"""
    assert discover(None, body, BASE).hub == "https://hub.example/"
    assert discover(None, body, BASE).self_url == "https://news.example/feeds/world.xml"


def test_rss_atom_link_and_entities() -> None:
    body = b"""<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
      <atom:link rel="hub" href="https://pubsubhubbub.appspot.com/?a=1&amp;b=2"/>
      <atom:link rel="self" type="application/rss+xml" href="https://news.example/rss"/></channel></rss>"""
    found = discover(None, body, BASE)
    assert found.hub == "https://pubsubhubbub.appspot.com/?a=1&b=2"
    assert found.self_url == "https://news.example/rss"


def test_link_header_wins_and_odd_values_are_ignored() -> None:
    header = '<https://hub.example/h>; rel="hub", <https://news.example/canonical>; rel="self alternate"'
    body = b'<feed><link rel="hub" href="https://other-hub.example/"/></feed>'
    found = discover(header, body, BASE)
    assert (found.hub, found.self_url) == ("https://hub.example/h", "https://news.example/canonical")
    assert link_header_rels('<javascript:alert(1)>; rel="hub", <ftp://x/>; rel=hub, garbage', BASE) == {}
    assert discover(None, b"<feed><title>no hub</title></feed>", BASE).hub is None
    assert discover(None, None, BASE).hub is None


def test_signatures() -> None:
    body = b"<feed/>"
    assert signature_ok("k", body, sign("k", body))
    assert signature_ok("k", body, sign("k", body, "sha1"))
    assert signature_ok("k", body, sign("k", body, "sha512").upper().replace("SHA512=", "sha512="))
    assert not signature_ok("k", body, sign("other", body))
    assert not signature_ok("k", body + b" ", sign("k", body))
    assert not signature_ok("k", body, None)
    assert not signature_ok("k", body, "md5=abc")
    assert not signature_ok("k", body, "nonsense")
    assert feed_secret("k", "a") != feed_secret("k", "b") and len(feed_secret("k", "a")) == 64


def test_only_the_requested_verification_is_confirmed() -> None:
    ok = {"expected_mode": "subscribe", "expected_topic": "https://x/feed"}
    assert verification_ok(mode="subscribe", topic="https://x/feed", **ok)
    assert not verification_ok(mode="unsubscribe", topic="https://x/feed", **ok)
    assert not verification_ok(mode="subscribe", topic="https://x/other", **ok)
    assert not verification_ok(mode=None, topic=None, **ok)
    assert not verification_ok(
        mode="subscribe", topic="https://x/feed", expected_mode=None, expected_topic="https://x/feed"
    )


def test_leases_are_renewed_ahead_of_expiry() -> None:
    assert renew_delay(86400, 0.1) == 77760
    assert renew_delay(2, 0.4) == 1.2
    assert renew_delay(0.5, 0.1) == 1.0  # never a busy loop
