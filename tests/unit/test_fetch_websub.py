"""WebSub's pure rules: hub discovery (and what a hostile body costs it), per-subscription
secrets and push signatures, which verifications are confirmed, lease clamping, the replay
window, and how a subscription is persisted."""

from __future__ import annotations

import time

import pytest

from ingestor.fetch.state import SavedCallback, SavedState, SubscriptionState, decode, encode
from ingestor.fetch.websub_protocol import (
    PendingRequest,
    body_key,
    discover,
    link_header_rels,
    new_nonce,
    new_token,
    parse_lease,
    remember,
    renew_delay,
    seen,
    sign,
    signature_ok,
    subscription_secret,
    token_ok,
    verification_ok,
)

BASE = "https://news.example/feeds/world.xml"
TOPIC = "https://x/feed"


def test_atom_links_are_found_and_made_absolute() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
      <link rel='self' href="/feeds/world.xml" /><link href="https://hub.example/" rel="hub"/>
      <link rel="alternate" href="https://news.example/"/></feed>"""
    assert discover(None, body, BASE).hub == "https://hub.example/"
    assert discover(None, body, BASE).self_url == "https://news.example/feeds/world.xml"


def test_rss_atom_link_and_entities() -> None:
    body = b"""<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
      <atom:link rel="hub" href="https://pubsubhubbub.appspot.com/?a=1&amp;b=2"/>
      <ATOM10:LINK REL="self" type="application/rss+xml" HREF=https://news.example/rss></channel></rss>"""
    found = discover(None, body, BASE)
    assert found.hub == "https://pubsubhubbub.appspot.com/?a=1&b=2"
    assert found.self_url == "https://news.example/rss"


def test_html_link_elements_and_lookalikes() -> None:
    body = b"""<html><head><linker rel="hub" href="https://no.example/">
      <link rel=stylesheet href=/s.css><link rel="hub" href="https://hub.example/h">
      <links rel="self" href="https://no.example/"></head></html>"""
    found = discover(None, body, BASE)
    assert (found.hub, found.self_url) == ("https://hub.example/h", None)


def test_link_header_wins_and_odd_values_are_ignored() -> None:
    header = '<https://hub.example/h>; rel="hub", <https://news.example/canonical>; rel="self alternate"'
    body = b'<feed><link rel="hub" href="https://other-hub.example/"/></feed>'
    found = discover(header, body, BASE)
    assert (found.hub, found.self_url) == ("https://hub.example/h", "https://news.example/canonical")
    assert link_header_rels('<javascript:alert(1)>; rel="hub", <ftp://x/>; rel=hub, garbage', BASE) == {}
    assert discover(None, b"<feed><title>no hub</title></feed>", BASE).hub is None
    assert discover(None, None, BASE).hub is None
    assert discover(None, b'<link rel="hub" href="javascript:x()">', BASE).hub is None


HOSTILE = {
    "<link with no >": b"<link " * 11000,
    "<atom:link with no >": b"<atom:link rel=hub " * 3500,
    "unterminated quotes": b'<link rel="' * 6000,
    "one huge tag": b"<link " + b'a="' * 21000 + b">",
    "thousands of tags": b'<link rel="x" hub="/a">' * 2800,
    "prefix colons": b"<" + b"a:" * 32000,
    "link link link": b"link" * 16000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_are_scanned_in_linear_time(name: str) -> None:
    # the regex scan this replaced took 4-10 s on some of these (on the event loop)
    body = HOSTILE[name][: 64 * 1024]
    started = time.perf_counter()
    for _ in range(5):
        discover(None, body + b'<link rel="hub" href="https://hub.example/">', BASE)
    assert (time.perf_counter() - started) / 5 < 0.25


#: Link header values as a server can send them: aiohttp admits 128 header lines of 8 KB
#: each, and the fetcher joins every Link value into one string (~1 MB at most).
HOSTILE_LINK_HEADERS = {
    # before: 19 s, every "<" read the rest of the header looking for a ">"
    "'<' with no '>'": "<" * 65_536,
    # before: 9.6 s
    "'<a' with no '>'": "<a" * 32_768,
    # before: 81 s, a parameter name was read again from every letter of the run
    "125 values, a name with no '='": ", ".join(["<https://news.example/>; " + "a" * 8_100] * 125),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(HOSTILE_LINK_HEADERS))
def test_hostile_link_headers_are_read_in_linear_time(name: str) -> None:
    """The Link header is read on the fetch stage's event loop, after every poll of a feed."""
    header = '<https://hub.example/h>; rel="hub", ' + HOSTILE_LINK_HEADERS[name]
    started = time.perf_counter()
    assert link_header_rels(header, BASE) == {"hub": "https://hub.example/h"}
    assert time.perf_counter() - started < 1.0


def test_link_header_targets_hold_no_angle_bracket() -> None:
    # a stray "<" before a target is text, not part of it
    assert link_header_rels('<<https://hub.example/h>; rel="hub"', BASE) == {"hub": "https://hub.example/h"}
    assert link_header_rels('<https://hub.example/h>; xrel=no; rel="hub self"', BASE) == {
        "hub": "https://hub.example/h",
        "self": "https://hub.example/h",
    }


def test_a_hub_after_many_links_is_still_found() -> None:
    body = b'<link rel="stylesheet" href="/s.css">' * 150 + b'<link rel="hub" href="https://hub.example/">'
    assert discover(None, body, BASE).hub == "https://hub.example/"


def test_signatures() -> None:
    body = b"<feed/>"
    assert signature_ok("k", body, sign("k", body))
    assert signature_ok("k", body, sign("k", body, "sha1"))
    assert signature_ok("k", body, sign("k", body, "sha512").upper().replace("SHA512=", "sha512="))
    assert not signature_ok("k", body, sign("other", body))
    assert not signature_ok("k", body + b" ", sign("k", body))
    assert not signature_ok("k", body, None)
    assert not signature_ok("k", body, "")
    assert not signature_ok("k", body, "md5=abc")
    assert not signature_ok("k", body, "nonsense")
    assert not signature_ok("", body, sign("", body))  # no secret: nothing is ever valid


def test_every_subscription_has_its_own_secret() -> None:
    a, b = new_nonce(), new_nonce()
    assert a != b and len(a) == 64
    assert subscription_secret(None, "feed", a) == a  # no operator key: the random nonce is the secret
    keyed = subscription_secret("key", "feed", a)
    assert keyed != a and len(keyed) == 64
    assert keyed == subscription_secret("key", "feed", a)  # derivable again after a restart
    assert keyed != subscription_secret("key", "other", a)
    assert keyed != subscription_secret("key", "feed", b)
    assert keyed != subscription_secret("other key", "feed", a)


def test_tokens() -> None:
    token = new_token()
    assert token_ok(token) and token != new_token()
    for bad in ("", "x", token.upper(), token + "0", "../" + token[3:], token[:-1] + "g"):
        assert not token_ok(bad)


def test_only_the_requested_verification_is_confirmed() -> None:
    sub = PendingRequest("subscribe", TOPIC, 0.0, "n")
    unsub = PendingRequest("unsubscribe", TOPIC, 0.0)
    assert verification_ok(mode="subscribe", topic=TOPIC, pending=sub)
    assert verification_ok(mode="unsubscribe", topic=TOPIC, pending=unsub)
    assert not verification_ok(mode="unsubscribe", topic=TOPIC, pending=sub)
    assert not verification_ok(mode="subscribe", topic=TOPIC, pending=unsub)
    assert not verification_ok(mode="subscribe", topic="https://x/other", pending=sub)
    assert not verification_ok(mode=None, topic=None, pending=sub)
    assert not verification_ok(mode="subscribe", topic=TOPIC, pending=None)  # not a token we wait on
    assert not verification_ok(mode="denied", topic=TOPIC, pending=sub)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3600", 3600.0),
        ("3600.5", 3600.5),
        (" 60 ", 60.0),
        (None, 86400.0),  # not given: what we asked for
        ("0.2", 1.0),  # never a busy renewal loop
        ("99999999999", 864000.0),  # clamped to max_lease
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-5", None),
        ("0", None),
        ("1e9", None),
        ("1_000", None),
        ("abc", None),
        ("", None),
        ("9" * 400, None),
    ],
)
def test_leases_are_clamped_and_nonsense_refused(value: str | None, expected: float | None) -> None:
    assert parse_lease(value, requested=86400.0, maximum=864000.0) == expected


def test_a_requested_lease_above_the_maximum_is_clamped_too() -> None:
    assert parse_lease(None, requested=10**9, maximum=100.0) == 100.0


def test_leases_are_renewed_ahead_of_expiry() -> None:
    assert renew_delay(86400, 0.1) == 77760
    assert renew_delay(2, 0.4) == 1.2
    assert renew_delay(0.5, 0.1) == 1.0  # never a busy loop


def test_replay_window() -> None:
    shas = [f"{i:02x}" * 32 for i in range(6)]
    recent: tuple[str, ...] = ()
    for sha in shas:
        recent = remember(recent, sha, 4)
    assert len(recent) == 4 and all(len(k) == 32 for k in recent)
    assert not seen(recent, shas[0]) and not seen(recent, shas[1])  # fell out of the window
    assert all(seen(recent, sha) for sha in shas[2:])
    assert recent[-1] == body_key(shas[-1])
    again = remember(recent, shas[2], 4)  # seen again: becomes the newest, no duplicate
    assert again[-1] == body_key(shas[2]) and len(set(again)) == 4
    assert seen(recent, shas[3].upper())


def test_subscription_and_replay_window_survive_the_state_record() -> None:
    callbacks = (
        SavedCallback("https://cb/websub/f/" + "a" * 32, 1000.0, "n" * 64),
        SavedCallback("https://cb/websub/f/" + "b" * 32, 2000.0, "m" * 64),
    )
    state = SavedState(
        url="https://x/feed",
        etag=None,
        last_modified=None,
        sha256="0" * 64,
        failures=0,
        change_interval=None,
        last_change_at=None,
        next_due=None,
        saved_at=1.0,
        websub=SubscriptionState("https://hub/", TOPIC, 2000.0, 3, 1, callbacks),
        recent=("a" * 32, "b" * 32),
    )
    assert decode(encode(state)) == state
    # a record written before these fields existed still reads, with none of them
    old = b'{"v":1,"url":"https://x","websub":{"hub":"h","topic":"t","lease_until":5}}'
    restored = decode(old)
    assert restored is not None and restored.recent == () and restored.websub is not None
    assert restored.websub.callbacks == ()
    # nonsense in the new fields is dropped, not fatal
    odd = (
        b'{"v":1,"url":"https://x","recent":[1,"x",null],"websub":{"hub":"h","topic":"t",'
        b'"callbacks":[{"url":"u"},{"url":"u","lease_until":1,"secret":"s"},7,'
        b'{"url":"u","lease_until":1,"nonce":"n"}]}}'
    )
    parsed = decode(odd)
    assert parsed is not None and parsed.recent == ("x",) and parsed.websub is not None
    assert parsed.websub.callbacks == (SavedCallback("u", 1.0, "n"),)
    assert b"secret" not in encode(parsed)
