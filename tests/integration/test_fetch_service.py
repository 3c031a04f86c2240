"""The FetchStage end to end on loopback: fixture server -> fetch -> the embedded broker -> news.raw."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.fetch.http import Fetcher
from ingestor.fetch.service import FetchStage
from ingestor.kafka import KafkaConnection, ensure_topics
from tests.conftest import make_settings
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_fetch_support import RSS_V1, RSS_V2, FeedServer, StaticResolver

pytestmark = pytest.mark.integration

FAST = {"min_interval": 0.05, "jitter": 0, "startup_spread": 0, "retries": 0, "connect_timeout": 2,
        "read_timeout": 2, "total_timeout": 5, "shutdown_grace": 0.5, "sharding": False}  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = FeedServer()
    await srv.start()
    yield srv
    await srv.close()


async def stage_for(broker: str, feeds: list[dict[str, Any]], **fetch: Any) -> tuple[FetchStage, Settings]:
    state_topic = f"fetch-state-{uuid.uuid4().hex[:8]}"  # the default name would be shared by tests
    settings = make_settings(broker, feeds=feeds, fetch={**FAST, "state_topic": state_topic, **fetch})
    connection = KafkaConnection(broker, settings.kafka)
    await ensure_topics(connection, settings.topics)
    return new_stage(broker, settings), settings


def new_stage(broker: str, settings: Settings) -> FetchStage:
    connection = KafkaConnection(broker, settings.kafka)
    return FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=StaticResolver()))


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def attempts(stage: FetchStage, feed_id: str) -> int:
    status = stage.feed_status(feed_id)
    return len(status.attempts) if status else 0


async def test_each_changed_body_is_produced_exactly_once(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    common = {"interval": 0.1, "timezone": "Europe/Kyiv", "format": "feed", "language": "uk"}
    stage, settings = await stage_for(
        broker_address,
        [
            {"id": "with-etag", "url": f"{base}/etag", **common},
            {"id": "no-validators", "url": f"{base}/plain", **common},
        ],
    )
    await stage.start()
    try:
        await until(lambda: attempts(stage, "with-etag") >= 4 and attempts(stage, "no-validators") >= 4)
        server.body = RSS_V2
        seen = (attempts(stage, "with-etag"), attempts(stage, "no-validators"))
        await until(lambda: attempts(stage, "with-etag") >= min(seen[0] + 4, 10)
                    and attempts(stage, "no-validators") >= min(seen[1] + 4, 10))  # fmt: skip
        health = stage.health()
        assert health.ready and health.running and health.feeds == 2
    finally:
        await stage.stop()
    assert not stage.health().running

    records = await read_topic(broker_address, settings.topics.raw, expect=4, settle=0.5)
    by_feed: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: r.offset):
        by_feed.setdefault(record.key.decode(), []).append(record)
    assert {k: [r.value for r in v] for k, v in by_feed.items()} == {
        "with-etag": [RSS_V1, RSS_V2],
        "no-validators": [RSS_V1, RSS_V2],
    }
    for feed_id, path in (("with-etag", "/etag"), ("no-validators", "/plain")):
        for record in by_feed[feed_id]:
            headers = hdr.as_dict(record.headers)
            assert headers[hdr.URL] == headers[hdr.FINAL_URL] == f"{base}{path}"
            assert headers[hdr.STATUS] == "200"
            assert headers[hdr.CONTENT_TYPE].startswith("application/rss+xml")
            assert headers[hdr.BODY_SHA256] == hashlib.sha256(record.value).hexdigest()
            assert headers[hdr.FETCHED_AT].endswith("Z")
            assert headers[hdr.FEED_TIMEZONE] == "Europe/Kyiv"
            assert headers[hdr.FEED_FORMAT] == "feed" and headers[hdr.FEED_LANGUAGE] == "uk"
            assert headers[hdr.VIA] == "poll"
            assert (hdr.ETAG in headers) == (feed_id == "with-etag")
    # the ETag feed was revalidated (304) rather than re-downloaded between changes
    assert stage.health().outcomes.get("not_modified", 0) >= 3
    assert stage.health().outcomes.get("unchanged", 0) >= 3  # the body-hash backstop
    assert any("If-None-Match" in r.headers for r in server.requests if r.path == "/etag")


async def test_failing_feeds_are_logged_and_retried_never_fatal(
    broker_address: str, server: FeedServer
) -> None:
    from ingestor.kafka.embedded import free_port

    base = f"http://127.0.0.1:{server.port}"
    feeds = [
        {"id": "good", "url": f"{base}/etag", "interval": 0.1},
        {"id": "five-hundred", "url": f"{base}/500", "interval": 0.1},
        {"id": "bot-wall", "url": f"{base}/challenge", "interval": 0.1},
        {"id": "html", "url": f"{base}/html", "interval": 0.1, "format": "feed"},
        {"id": "limited", "url": f"{base}/429", "interval": 0.1},
        {"id": "refused", "url": f"http://127.0.0.1:{free_port('127.0.0.1')}/x", "interval": 0.1},
        {"id": "loop", "url": f"{base}/loop/a", "interval": 0.1},
    ]
    stage, settings = await stage_for(broker_address, feeds, max_backoff=0.4)
    await stage.start()
    try:
        await until(lambda: all(attempts(stage, f) >= 3 for f in ("good", "five-hundred", "html", "refused")))
        health = stage.health()
        assert health.ready
        assert {"ok", "http_5xx", "not_a_feed", "http_429", "connect", "redirect_loop"} <= set(
            health.outcomes
        )
        broken = stage.feed_status("five-hundred")
        assert broken is not None and broken.failures >= 3  # backed off, still polled
        assert broken.attempts[-1].reason == "server error 500"
        limited = stage.feed_status("limited")
        assert limited is not None and len(limited.attempts) == 1  # Retry-After: 120 honoured
        assert limited.next_due is not None
        assert (limited.next_due - limited.attempts[-1].at).total_seconds() >= 119
        wall = stage.feed_status("bot-wall")
        assert wall is not None and "cloudflare" in (wall.attempts[-1].reason or "")
    finally:
        await stage.stop()
    records = await read_topic(broker_address, settings.topics.raw, expect=1, settle=0.3)
    assert [r.key for r in records] == [b"good"]


async def test_state_is_recorded_only_after_the_broker_acks(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    stage, settings = await stage_for(broker_address, [{"id": "f", "url": f"{base}/etag", "interval": 0.1}])
    await stage.start()
    producer = stage._producer
    assert producer is not None
    real_send = producer.send_and_wait
    calls = 0

    async def flaky_send(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("broker unavailable")
        return await real_send(*args, **kwargs)

    producer.send_and_wait = flaky_send  # type: ignore[method-assign]
    try:
        await until(lambda: attempts(stage, "f") >= 4)
    finally:
        await stage.stop()
    status = stage.feed_status("f")
    assert status is not None
    assert [a.outcome.value for a in status.attempts[:3]] == ["produce_failed", "ok", "not_modified"]
    etag_requests = [r.headers.get("If-None-Match") for r in server.requests]
    assert etag_requests[:2] == [None, None]  # the failed produce left no validators behind
    assert etag_requests[2] is not None
    records = await read_topic(broker_address, settings.topics.raw, expect=1, settle=0.3)
    assert [r.value for r in records] == [RSS_V1]


async def test_per_host_cap_and_bounded_concurrency(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    feeds = [{"id": f"s{i}", "url": f"{base}/slow/{i}?s=0.2", "interval": 30} for i in range(6)]
    stage, settings = await stage_for(
        broker_address, feeds, per_host_concurrency=2, global_concurrency=4, per_host_stagger=0.05
    )
    await stage.start()
    waited = 0
    try:
        deadline = time.monotonic() + 10
        while sum(attempts(stage, f"s{i}") for i in range(6)) < 6:
            health = stage.health()
            waited = max(waited, health.waiting_for_host)
            assert health.in_flight <= 2
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        await stage.stop()
    assert server.max_concurrent == 2
    assert waited >= 3  # the rest waited in the host's line, not in tasks
    records = await read_topic(broker_address, settings.topics.raw, expect=6, settle=0.3)
    assert sorted(r.key for r in records) == [f"s{i}".encode() for i in range(6)]


async def test_a_fast_host_is_polled_one_fetch_at_a_time_over_one_connection(
    broker_address: str, server: FeedServer
) -> None:
    """Feeds of one host due together, answers in 50 ms: the second slot never opens before the
    stagger (2 s here, so that a slow machine cannot reach it); each fetch hands its kept-alive
    connection to the next."""
    base = f"http://127.0.0.1:{server.port}"
    feeds = [{"id": f"q{i}", "url": f"{base}/slow/{i}?s=0.05", "interval": 30} for i in range(5)]
    stage, _ = await stage_for(broker_address, feeds, per_host_concurrency=2, per_host_stagger=2.0)
    await stage.start()
    try:
        await until(lambda: sum(attempts(stage, f"q{i}") for i in range(5)) == 5)
    finally:
        await stage.stop()
    assert server.max_concurrent == 1
    # the first asks to close (its origin had not been fetched lately: keepalive.py); the next
    # opens the connection the other three reuse
    assert len(set(server.peers[1:])) == 1, server.peers


async def test_stop_is_prompt_with_fetches_in_flight(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    stage, _ = await stage_for(
        broker_address,
        [{"id": "drip", "url": f"{base}/drip?every=0.2", "interval": 1}],
        total_timeout=60,
        shutdown_grace=0.3,
    )
    await stage.start()
    await until(lambda: stage.health().in_flight == 1)
    started = time.monotonic()
    await stage.stop()
    assert time.monotonic() - started < 2
    assert stage.health().in_flight == 0 and not stage.health().ready


async def test_restart_resumes_validators_and_schedule(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    feeds = [
        {"id": "f", "url": f"{base}/etag", "interval": 0.1},
        {"id": "limited", "url": f"{base}/429", "interval": 0.1},
    ]
    first, settings = await stage_for(broker_address, feeds)
    await first.start()
    try:
        await until(lambda: attempts(first, "f") >= 2 and attempts(first, "limited") >= 1)
    finally:
        await first.stop()
    assert server.hits["/429"] == 1
    fetched_before = len([r for r in server.requests if r.path == "/etag"])

    second = new_stage(broker_address, settings)  # a new process would see exactly this
    await second.start()
    try:
        await until(lambda: attempts(second, "f") >= 2)
        await asyncio.sleep(0.2)
    finally:
        await second.stop()
    status = second.feed_status("f")
    assert status is not None and status.attempts[0].outcome.value == "not_modified"
    after = [r for r in server.requests if r.path == "/etag"][fetched_before:]
    assert after and all(r.headers.get("If-None-Match") for r in after)
    assert server.hits["/429"] == 1  # its Retry-After outlived the restart
    limited = second.feed_status("limited")
    assert limited is not None and limited.failures == 1 and limited.next_due is not None
    records = await read_topic(broker_address, settings.topics.raw, expect=1, settle=0.3)
    assert [r.key for r in records] == [b"f"]


async def test_304s_are_summarised_failures_and_changes_keep_their_own_lines(
    broker_address: str, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog
    from structlog.testing import capture_logs

    from ingestor.fetch import recorder, service

    base = f"http://127.0.0.1:{server.port}"
    feeds = [
        {"id": "good", "url": f"{base}/etag", "interval": 0.1},
        {"id": "five-hundred", "url": f"{base}/500", "interval": 0.1},
    ]
    stage, _settings = await stage_for(broker_address, feeds, max_backoff=0.2, summary_interval=0.3)
    with capture_logs() as logs:
        # loggers bound under the capture (the modules' own may be cached from other tests)
        monkeypatch.setattr(recorder, "log", structlog.get_logger("ingestor.fetch"))
        monkeypatch.setattr(service, "log", structlog.get_logger("ingestor.fetch"))
        await stage.start()
        try:
            await until(lambda: attempts(stage, "good") >= 5 and attempts(stage, "five-hundred") >= 3)
            await until(lambda: any(e["event"] == "fetch_summary" for e in logs), timeout=5)
        finally:
            await stage.stop()
    lines = [(e["feed"], e["outcome"]) for e in logs if e["event"] == "feed_fetched"]
    assert ("good", "ok") in lines and ("five-hundred", "http_5xx") in lines
    assert all(outcome != "not_modified" for _feed, outcome in lines)  # the 304s: no line of their own
    summaries = [e for e in logs if e["event"] == "fetch_summary"]
    counted = sum(e["outcomes"].get("not_modified", 0) for e in summaries)
    assert counted == stage.health().outcomes["not_modified"] >= 3  # every 304 counted, once


async def test_a_slow_feed_keeps_its_cadence(broker_address: str, server: FeedServer) -> None:
    """Each poll takes 0.4 s of a 1 s interval: the next is due an interval after this one was
    due, so polls start every second, not every 1.4 s (the feed polled less often than asked)."""
    url = f"http://127.0.0.1:{server.port}/slow/1?s=0.4"
    stage, _ = await stage_for(broker_address, [{"id": "slow", "url": url, "interval": 1.0}])
    await stage.start()
    try:
        await until(lambda: attempts(stage, "slow") >= 6, timeout=20)
    finally:
        await stage.stop()
    starts = [at for path, at in server.arrivals if path == "/slow/1"]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]  # the first may be early
    assert len(gaps) >= 4
    assert sum(gaps) / len(gaps) < 1.15, gaps
    assert min(gaps) > 0.5, gaps  # never sooner than its min_interval (0.25 s) after the last
