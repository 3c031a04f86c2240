"""The article fetcher in the fetch stage, on the embedded broker and a loopback site: requests on
``topics.article_requests`` in, pages and fallbacks on ``topics.raw`` out, each page fetched once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.fetch.service import FetchStage
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.models import NewsItem, content_hash, item_to_json
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce, read_topic

pytestmark = pytest.mark.integration

FAST = {"retries": 0, "connect_timeout": 2, "read_timeout": 2, "total_timeout": 4, "shutdown_grace": 0.5,
        "sharding": False, "session_timeout": 3, "heartbeat_interval": 0.5}  # fmt: skip
PAGE = b"<!doctype html><html><body><article><h1>Story</h1><p>The whole story.</p></article></body></html>"
ROBOTS = b"User-agent: *\nDisallow: /secret/\n"


class Site:
    """A news site on loopback that counts the requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.user_agents: set[str] = set()
        self.flaky_ok = False
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()

        async def page(request: web.Request) -> web.Response:
            return web.Response(body=PAGE, content_type="text/html")

        async def robots(request: web.Request) -> web.Response:
            return web.Response(body=ROBOTS, content_type="text/plain")

        async def flaky(request: web.Request) -> web.Response:
            if self.flaky_ok:
                return web.Response(body=PAGE, content_type="text/html")
            return web.Response(status=503, text="try later")

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.hits[request.path] += 1
            self.user_agents.add(request.headers.get("User-Agent", ""))
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(count)
        app.router.add_get("/robots.txt", robots)
        app.router.add_get("/news/{n}", page)
        app.router.add_get("/secret/{n}", page)
        app.router.add_get("/flaky", flaky)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.close()


def entry(entry_id: str, url: str) -> bytes:
    item = NewsItem(
        id=entry_id,
        kind="article",
        source="feed-a",
        url=url,
        title=f"Headline {entry_id}",
        body="A teaser …",
        fetched_at=datetime.now(UTC),
        body_source="feed",
        content_hash=content_hash(title=f"Headline {entry_id}", body="A teaser …", authors=[], url=url),
    )
    return item_to_json(item)


async def ask(settings: Settings, broker: str, *entries: tuple[str, str]) -> None:
    headers = [(hdr.FEED_TIMEZONE, b"Europe/Kyiv"), (hdr.FEED_LANGUAGE, b"uk"), ("source-feed", b"feed-a")]
    await produce(
        broker,
        settings.topics.article_requests,
        [(b"feed-a", entry(entry_id, url), headers) for entry_id, url in entries],
    )


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def raw_records(settings: Settings, broker: str, expect: int, settle: float = 0.3) -> list[Any]:
    records = await read_topic(broker, settings.topics.raw, expect=expect, settle=settle, limit_s=20)
    return sorted(records, key=lambda r: (r.partition, r.offset))


def by_entry(records: list[Any]) -> dict[str, list[dict[str, str]]]:
    import json

    out: dict[str, list[dict[str, str]]] = {}
    for record in records:
        headers = hdr.as_dict(record.headers)
        entry_id = json.loads(headers[hdr.ARTICLE_ENTRY])["id"]
        out.setdefault(entry_id, []).append({**headers, "value": record.value.decode()})
    return out


async def stage_for(broker: str, **full_text: Any) -> tuple[FetchStage, Settings]:
    settings = make_settings(broker, fetch=FAST, full_text={"deadline": 3, **full_text})
    connection = KafkaConnection(broker, settings.kafka)
    await ensure_topics(connection, settings.topics)
    return FetchStage(settings, connection, feeds=[]), settings


async def started(stage: FetchStage) -> None:
    """Start, and wait until the article fetcher serves every partition (the deadline counts from
    the request's timestamp, so a request sent during the group join could miss a short one)."""
    await stage.start()
    articles = stage._articles
    assert articles is not None
    await until(lambda: len(articles.partitions) == 3, timeout=20)


async def test_each_page_is_fetched_once_failures_fall_back_and_a_restart_refetches_nothing(
    broker_address: str, site: Site
) -> None:
    stage, settings = await stage_for(broker_address)
    await started(stage)
    try:
        await ask(
            settings,
            broker_address,
            ("e-page", f"{site.base}/news/1"),
            ("e-page", f"{site.base}/news/1"),  # the feed re-read: the same request again
            ("e-missing", f"{site.base}/news-gone"),
            ("e-secret", f"{site.base}/secret/1"),
        )
        records = await raw_records(settings, broker_address, expect=3)
        got = by_entry(records)
        assert sorted(got) == ["e-missing", "e-page", "e-secret"] and all(len(v) == 1 for v in got.values())
        page = got["e-page"][0]
        assert page["value"] == PAGE.decode()
        assert page[hdr.ARTICLE_OUTCOME] == "page" and page[hdr.VIA] == "article"
        assert page[hdr.URL] == f"{site.base}/news/1" and page[hdr.STATUS] == "200"
        assert page[hdr.FEED_FORMAT] == "html" and page[hdr.FEED_TIMEZONE] == "Europe/Kyiv"
        assert page[hdr.FEED_LANGUAGE] == "uk" and page[hdr.CONTENT_TYPE].startswith("text/html")
        assert page[hdr.FETCHED_AT].endswith("Z") and hdr.BODY_SHA256 in page
        assert {r.key for r in records} == {b"feed-a"}
        assert got["e-missing"][0][hdr.ARTICLE_OUTCOME] == "http_404" and got["e-missing"][0]["value"] == ""
        assert got["e-secret"][0][hdr.ARTICLE_OUTCOME] == "robots_disallowed"
        assert site.hits["/news/1"] == 1 and site.hits["/news-gone"] == 1
        assert site.hits["/secret/1"] == 0 and site.hits["/robots.txt"] == 1
        assert site.user_agents == {settings.fetch.user_agent}
        assert stage.health().articles_pending == 0
    finally:
        await stage.stop()

    again = FetchStage(settings, KafkaConnection(broker_address, settings.kafka), feeds=[])
    await started(again)
    try:  # the done page is asked for again after the restart, then a new one (same partition, after it)
        await ask(
            settings, broker_address, ("e-page", f"{site.base}/news/1"), ("e-new", f"{site.base}/news/2")
        )
        records = await raw_records(settings, broker_address, expect=4)
        assert sorted(by_entry(records)) == ["e-missing", "e-new", "e-page", "e-secret"]
        assert len(records) == 4
        assert site.hits["/news/1"] == 1 and site.hits["/news/2"] == 1
    finally:
        await again.stop()


async def test_a_failing_page_falls_back_at_the_deadline_and_the_page_follows(
    broker_address: str, site: Site
) -> None:
    stage, settings = await stage_for(broker_address, deadline=2)
    await started(stage)
    try:
        await ask(settings, broker_address, ("e-flaky", f"{site.base}/flaky"))
        first = await raw_records(settings, broker_address, expect=1, settle=0.0)
        assert [hdr.as_dict(r.headers)[hdr.ARTICLE_OUTCOME] for r in first] == ["deadline"]
        assert first[0].value == b"" and site.hits["/flaky"] >= 2  # retried before the deadline
        assert stage.health().articles_pending == 1  # still tried
        site.flaky_ok = True
        records = await raw_records(settings, broker_address, expect=2, settle=0.0)
        outcomes = [hdr.as_dict(r.headers)[hdr.ARTICLE_OUTCOME] for r in records]
        assert outcomes == ["deadline", "page"] and records[1].value == PAGE
        await until(lambda: stage.health().articles_pending == 0)
    finally:
        await stage.stop()


async def test_a_request_that_is_not_an_entry_goes_to_the_dlq_and_the_next_one_is_served(
    broker_address: str, site: Site
) -> None:
    stage, settings = await stage_for(broker_address)
    await started(stage)
    try:
        await produce(broker_address, settings.topics.article_requests, [(b"feed-a", b"{not json", [])])
        await ask(settings, broker_address, ("e-after", f"{site.base}/news/3"))
        records = await raw_records(settings, broker_address, expect=1)
        assert list(by_entry(records)) == ["e-after"]
        dlq = await read_topic(broker_address, settings.topics.dlq, expect=1, settle=0.2)
        assert len(dlq) == 1 and hdr.as_dict(dlq[0].headers)[hdr.DLQ_STAGE] == "fetch"
        assert hdr.as_dict(dlq[0].headers)[hdr.DLQ_ERROR_TYPE] == "bad_request"
    finally:
        await stage.stop()
