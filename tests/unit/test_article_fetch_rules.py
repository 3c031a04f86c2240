"""The article fetcher's pure parts: requests, the state record, the decisions, robots.txt rules."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor import headers as hdr
from ingestor.config import FetchConfig, FullTextConfig
from ingestor.fetch.article_decision import (
    ArticlePolicy,
    Attempt,
    Kind,
    after_fallback,
    at_deadline,
    backoff,
    classify,
    expired,
    on_attempt,
    on_request,
    pending,
    wake_at,
)
from ingestor.fetch.article_state import (
    ArticleRequest,
    ArticleState,
    BadRequest,
    decode,
    encode,
    parse_request,
)
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.robots_rules import PARSE_BYTES, from_fetch, parse_rules, user_agent_token

POLICY = ArticlePolicy(
    deadline=60, give_up_after=3600, revisit=None, remember=86400, backoff_base=10, backoff_max=600
)
T0 = 1_700_000_000.0


def entry(
    entry_id: str = "e1", url: str = "https://site.example/a", digest: str | None = "sha256:1"
) -> bytes:
    return json.dumps(
        {"id": entry_id, "url": url, "source": "feed-a", "kind": "article", "content_hash": digest}
    ).encode()


def request(
    url: str = "https://site.example/a", digest: str | None = "sha256:1", at: float = T0
) -> ArticleRequest:
    return parse_request(
        b"feed-a", entry(url=url, digest=digest), {hdr.FEED_TIMEZONE: "Europe/Kyiv"}, int(at * 1000)
    )


# --- requests ------------------------------------------------------------------------------------


def test_a_request_is_read_from_the_entry_and_its_headers() -> None:
    got = request()
    assert (got.entry_id, got.feed_id, got.url, got.content_hash, got.seen_at) == (
        "e1",
        "feed-a",
        "https://site.example/a",
        "sha256:1",
        T0,
    )
    assert got.header(hdr.FEED_TIMEZONE) == "Europe/Kyiv" and got.header(hdr.FEED_LANGUAGE) is None
    assert json.loads(got.entry)["id"] == "e1"


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[1, 2]",
        json.dumps({"url": "https://x/"}).encode(),
        json.dumps({"id": "e", "url": "ftp://x/"}).encode(),
        json.dumps({"id": "e", "url": "javascript:alert(1)"}).encode(),
        json.dumps({"id": "e", "url": "https://x/a b"}).encode(),
        json.dumps({"id": "e", "url": "https://x/" + "a" * 5000}).encode(),
        json.dumps({"id": "e", "url": "https:///nohost"}).encode(),
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_what_is_not_an_entry_with_a_link_is_a_bad_request(value: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(b"feed", value, {}, 0)


def test_credentials_in_an_article_link_are_never_sent() -> None:
    got = parse_request(b"f", json.dumps({"id": "e", "url": "https://u:p@site.example/a"}).encode(), {}, 0)
    assert got.url == "https://site.example/a"


def test_the_feed_id_comes_from_the_key_else_the_entry_source() -> None:
    assert parse_request(None, entry(), {}, 0).feed_id == "feed-a"
    with pytest.raises(BadRequest):
        parse_request(None, json.dumps({"id": "e", "url": "https://x/"}).encode(), {}, 0)


# --- the record ------------------------------------------------------------------------------------

states = st.builds(
    ArticleState,
    entry_id=st.text(min_size=1, max_size=20),
    feed_id=st.text(max_size=10),
    url=st.text(max_size=30),
    status=st.sampled_from(["pending", "fallback", "done", "failed"]),
    first_seen=st.floats(0, 2e9).map(lambda x: round(x, 3)),
    updated_at=st.floats(0, 2e9).map(lambda x: round(x, 3)),
    attempts=st.integers(0, 1000),
    next_try=st.none() | st.floats(0, 2e9).map(lambda x: round(x, 3)),
    fetched_at=st.none() | st.floats(0, 2e9).map(lambda x: round(x, 3)),
    reason=st.none() | st.text(max_size=10),
    fallback_due=st.booleans(),
    content_hash=st.none() | st.text(max_size=10),
    entry=st.none() | st.text(max_size=50),
    context=st.lists(
        st.tuples(st.sampled_from(["feed-timezone", "feed-language"]), st.text(max_size=5)), max_size=2
    ).map(lambda pairs: tuple(dict(pairs).items())),
)


@settings(max_examples=200)
@given(states)
def test_the_record_round_trips(state: ArticleState) -> None:
    back = decode(encode(state))
    expected = state if state.open else replace(state, fallback_due=state.status == "pending")
    assert back == expected


def test_unknown_fields_are_ignored_and_unreadable_records_count_as_none() -> None:
    record = json.loads(encode(pending(request(), T0)))
    record["from_the_future"] = {"x": 1}
    assert decode(json.dumps(record).encode()) == pending(request(), T0)
    assert decode(None) is None and decode(b"") is None and decode(b"{") is None
    assert decode(json.dumps({**record, "v": 2}).encode()) is None
    assert decode(json.dumps({**record, "status": "weird"}).encode()) is None
    assert decode(json.dumps({**record, "first_seen": "soon"}).encode()) is None


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decoding_never_raises(data: bytes) -> None:
    decode(data)


# --- requests against the record ---------------------------------------------------------------------


def test_a_new_entry_is_fetched_and_a_known_one_is_not_fetched_again() -> None:
    first = on_request(None, request(), POLICY, T0 + 1)
    assert first.action == "fetch" and first.state is not None
    assert first.state.status == "pending" and first.state.first_seen == T0 and first.state.fallback_due
    assert on_request(first.state, request(), POLICY, T0 + 2).action == "skip"  # in hand
    done = first.state.closed("done", T0 + 5, fetched_at=T0 + 5)
    assert done.entry is None and done.context == ()
    for later in (T0 + 10, T0 + 10 * 86400):
        assert on_request(done, request(), POLICY, later).action == "skip"
    failed = first.state.closed("failed", T0 + 5, reason="http_404")
    assert on_request(failed, request(), POLICY, T0 + 10).action == "skip"


def test_only_a_changed_link_is_fetched_again_with_a_new_deadline() -> None:
    done = pending(request(), T0).closed("done", T0 + 5, fetched_at=T0 + 5)
    moved = on_request(done, request(url="https://site.example/b", at=T0 + 100), POLICY, T0 + 100)
    assert moved.action == "refetch" and moved.why == "link_changed"
    assert moved.state is not None and moved.state.first_seen == T0 + 100 and moved.state.fallback_due
    # an edited teaser (or one that changes on every read) costs no page fetch
    assert on_request(done, request(digest="sha256:2"), POLICY, T0 + 100).action == "skip"
    assert on_request(done, request(digest=None), POLICY, T0 + 100).action == "skip"


def test_revisit_fetches_a_done_page_again_without_a_fallback() -> None:
    policy = replace(POLICY, revisit=3600)
    done = pending(request(), T0).closed("done", T0 + 5, fetched_at=T0 + 5)
    assert on_request(done, request(), policy, T0 + 3000).action == "skip"
    again = on_request(done, request(), policy, T0 + 3605)
    assert again.action == "refetch" and again.why == "revisit"
    assert again.state is not None and not again.state.fallback_due
    assert not at_deadline(again.state, policy, T0 + 10_000)
    # a failed revisit keeps the published page
    verdict = on_attempt(again.state, Attempt(Kind.PERMANENT, "http_404"), policy, T0 + 3610, lambda: 0.5)
    assert verdict.state.status == "done" and verdict.produce is None


def test_a_request_stamped_in_the_future_counts_from_now() -> None:
    assert pending(request(at=T0 + 999), T0).first_seen == T0


# --- attempts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "ctype", "body", "kind", "reason"),
    [
        (Outcome.OK, 200, "text/html; charset=utf-8", b"<html>", Kind.PAGE, "page"),
        (Outcome.OK, 200, "application/xhtml+xml", b"<html>", Kind.PAGE, "page"),
        (Outcome.OK, 200, None, b"  <!doctype html>", Kind.PAGE, "page"),
        (Outcome.OK, 200, "application/pdf", b"%PDF", Kind.PERMANENT, "not_html"),
        (Outcome.OK, 200, None, b"%PDF", Kind.PERMANENT, "not_html"),
        (Outcome.HTTP_4XX, 404, None, None, Kind.PERMANENT, "http_404"),
        (Outcome.HTTP_4XX, 410, None, None, Kind.PERMANENT, "http_410"),
        (Outcome.HTTP_4XX, 418, None, None, Kind.PERMANENT, "http_4xx"),
        (Outcome.BLOCKED, None, None, None, Kind.PERMANENT, "blocked"),
        (Outcome.TOO_LARGE, 200, None, None, Kind.PERMANENT, "too_large"),
        (Outcome.NOT_A_FEED, 403, None, None, Kind.PERMANENT, "bot_wall"),
        (Outcome.HTTP_5XX, 503, None, None, Kind.TRANSIENT, "http_5xx"),
        (Outcome.HTTP_429, 429, None, None, Kind.TRANSIENT, "http_429"),
        (Outcome.TIMEOUT, None, None, None, Kind.TRANSIENT, "timeout"),
        (Outcome.DNS, None, None, None, Kind.TRANSIENT, "dns"),
    ],
)
def test_an_attempt_is_a_page_a_permanent_or_a_transient_failure(
    outcome: Outcome, status: int | None, ctype: str | None, body: bytes | None, kind: Kind, reason: str
) -> None:
    got = classify(outcome, status, ctype, body, None)
    assert (got.kind, got.reason) == (kind, reason)


def test_a_page_closes_the_entry_and_a_permanent_failure_falls_back_at_once() -> None:
    state = pending(request(), T0)
    page = on_attempt(state, Attempt(Kind.PAGE, "page"), POLICY, T0 + 2, lambda: 0.5)
    assert page.produce == "page" and page.state.status == "done" and page.state.fetched_at == T0 + 2
    assert page.state.attempts == 1 and page.state.entry is None
    gone = on_attempt(state, Attempt(Kind.PERMANENT, "http_404"), POLICY, T0 + 2, lambda: 0.5)
    assert gone.produce == "fallback" and gone.state.status == "failed" and gone.state.reason == "http_404"


def test_transient_failures_retry_with_capped_jittered_backoff_and_retry_after_as_a_floor() -> None:
    state = pending(request(), T0)
    delays = []
    for _ in range(8):
        verdict = on_attempt(state, Attempt(Kind.TRANSIENT, "http_5xx"), POLICY, T0, lambda: 0.999)
        assert verdict.produce is None and verdict.state.status == "pending"
        assert verdict.state.next_try is not None
        delays.append(verdict.state.next_try - T0)
        state = verdict.state
    assert delays[0] == pytest.approx(10, rel=0.01) and delays[1] == pytest.approx(20, rel=0.01)
    assert max(delays) <= 600
    low = on_attempt(pending(request(), T0), Attempt(Kind.TRANSIENT, "t"), POLICY, T0, lambda: 0.0)
    assert low.state.next_try == T0 + 5  # never sooner than half a step
    asked = on_attempt(
        pending(request(), T0), Attempt(Kind.TRANSIENT, "http_429", 120.0), POLICY, T0, lambda: 0.5
    )
    assert asked.state.next_try == T0 + 120


@settings(max_examples=200)
@given(attempts=st.integers(0, 10_000), r=st.floats(0, 0.9999))
def test_backoff_stays_within_its_bounds(attempts: int, r: float) -> None:
    delay = backoff(attempts, POLICY, lambda: r)
    assert POLICY.backoff_base / 2 <= delay <= POLICY.backoff_max


def test_the_deadline_falls_back_once_and_the_page_is_still_tried() -> None:
    state = pending(request(), T0)
    assert not at_deadline(state, POLICY, T0 + 59.9) and at_deadline(state, POLICY, T0 + 60)
    assert wake_at(replace(state, next_try=T0 + 500), POLICY) == T0 + 60
    after = after_fallback(state, "deadline", T0 + 60)
    assert after.status == "fallback" and not after.fallback_due and after.entry == state.entry
    assert not at_deadline(after, POLICY, T0 + 1000)
    late = on_attempt(after, Attempt(Kind.PAGE, "page"), POLICY, T0 + 300, lambda: 0.5)
    assert late.produce == "page" and late.state.status == "done"  # an updated version downstream
    still = on_attempt(after, Attempt(Kind.PERMANENT, "http_404"), POLICY, T0 + 300, lambda: 0.5)
    assert still.produce is None and still.state.status == "failed"  # the fallback went out already


def test_transient_failures_give_up_after_give_up_after() -> None:
    state = after_fallback(pending(request(), T0), "deadline", T0 + 60)
    verdict = on_attempt(state, Attempt(Kind.TRANSIENT, "http_5xx"), POLICY, T0 + 3600, lambda: 0.5)
    assert verdict.outcome == "gave_up" and verdict.state.status == "failed" and verdict.produce is None
    # had the deadline fallback not gone out (give_up_after shorter than the deadline), it goes now
    short = replace(POLICY, give_up_after=30)
    early = on_attempt(pending(request(), T0), Attempt(Kind.TRANSIENT, "x"), short, T0 + 31, lambda: 0.5)
    assert early.produce == "fallback" and early.state.status == "failed"


def test_closed_records_are_forgotten_after_remember() -> None:
    done = pending(request(), T0).closed("done", T0 + 5, fetched_at=T0 + 5)
    assert not expired(done, POLICY, T0 + 5 + 86399) and expired(done, POLICY, T0 + 5 + 86400)
    assert not expired(pending(request(), T0), POLICY, T0 + 10**9)  # open work is never forgotten


def test_the_backoff_scales_with_the_deadline() -> None:
    policy = ArticlePolicy.from_config(FullTextConfig(deadline=3.0), FetchConfig())
    assert policy.backoff_base == 0.5 and policy.deadline == 3.0
    assert ArticlePolicy.from_config(FullTextConfig(), FetchConfig()).backoff_base == 10.0


# --- robots.txt ------------------------------------------------------------------------------------


def test_the_user_agent_token_is_the_product_name() -> None:
    assert user_agent_token("news-ingestor/0.1 (+https://github.com/news-ingestor)") == "news-ingestor"
    assert user_agent_token("MyBot_2") == "mybot_2"
    assert user_agent_token("") == user_agent_token(None) == user_agent_token("/x") == "news-ingestor"


ROBOTS = b"""User-agent: *
Disallow: /private/

User-agent: news-ingestor
Disallow: /no-news/
Allow: /no-news/but-this
"""


def test_rules_are_read_with_the_matching_group() -> None:
    rules = from_fetch(Outcome.OK, 200, ROBOTS, T0, 3600)
    assert rules.kind == "rules" and rules.expires_at == T0 + 3600
    assert rules.check("https://s/no-news/x", "news-ingestor") == "disallowed"
    assert rules.check("https://s/no-news/but-this", "news-ingestor") == "allowed"
    assert rules.check("https://s/private/x", "news-ingestor") == "allowed"  # its own group applies
    assert rules.check("https://s/private/x", "otherbot") == "disallowed"


def test_4xx_allows_all_and_5xx_or_unreachable_disallows_for_a_short_while() -> None:
    for status in (404, 403, 410):
        rules = from_fetch(Outcome.HTTP_4XX, status, None, T0, 3600)
        assert rules.check("https://s/x", "t") == "allowed" and rules.expires_at == T0 + 3600
    for outcome, status in ((Outcome.HTTP_5XX, 503), (Outcome.TIMEOUT, None), (Outcome.HTTP_429, 429),
                            (Outcome.CONNECT, None), (Outcome.TOO_LARGE, 200)):  # fmt: skip
        rules = from_fetch(outcome, status, None, T0, 3600)
        assert rules.check("https://s/x", "t") == "unreachable" and rules.expires_at == T0 + 60
    assert from_fetch(Outcome.BLOCKED, None, None, T0, 3600).check("https://s/x", "t") == "blocked"
    assert from_fetch(Outcome.NOT_A_FEED, 200, None, T0, 3600, reason="empty body").kind == "allow_all"
    wall = from_fetch(Outcome.NOT_A_FEED, 200, None, T0, 3600, reason="bot wall (cloudflare challenge)")
    assert wall.kind == "unreachable"


def test_only_the_first_500_kib_are_parsed() -> None:
    filler = b"# " + b"x" * 1000 + b"\n"
    body = (
        b"User-agent: *\nDisallow: /early/\n"
        + filler * (PARSE_BYTES // len(filler) + 1)
        + b"Disallow: /late/\n"
    )
    rules = parse_rules(body)
    assert not rules.can_fetch("https://s/early/1", "t")
    assert rules.can_fetch("https://s/late/1", "t")


def test_hostile_robots_txt_is_read_in_linear_time() -> None:
    import time

    body = b"User-agent: *\n" + b"Disallow: /" + b"*a" * 20_000 + b"$\n"
    started = time.perf_counter()
    rules = from_fetch(Outcome.OK, 200, body, T0, 3600)
    rules.check("https://s/" + "a" * 5000 + "b", "t")
    assert time.perf_counter() - started < 2.0
