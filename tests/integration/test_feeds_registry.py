"""The feed registry in process: config feeds seeded, feeds added and removed live through the
topic, and a graceful handover that keeps validators and due times (no immediate refetch)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ingestor.config import FeedConfig, Settings
from ingestor.fetch.feeds import encode_feed, read_feeds, read_feeds_placed, write_feeds
from ingestor.fetch.http import Fetcher
from ingestor.fetch.placement import host_partition
from ingestor.fetch.service import FetchStage
from ingestor.kafka import KafkaConnection, ensure_topics
from tests.commands import run_ingestor as cli
from tests.conftest import make_settings
from tests.integration.daemon_process import write_config
from tests.integration.test_fetch_support import FeedServer, StaticResolver

pytestmark = pytest.mark.integration

INTERVAL = 1.5


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = FeedServer()
    await srv.start()
    yield srv
    await srv.close()


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def registry_settings(
    broker_address: str, *, feeds: list[dict[str, Any]] | None = None, **fetch: Any
) -> tuple[Settings, KafkaConnection]:
    """Sharded fetch settings with a group and state topic of this test's own (topics made)."""
    tag = uuid.uuid4().hex[:8]
    fetch = {
        "group_id": f"g{tag}-fetch",
        "state_topic": f"t{tag}.fetch-state",
        "min_interval": 0.05,
        "jitter": 0,
        "retries": 0,
        "shutdown_grace": 1,
        **fetch,
    }
    settings = make_settings(broker_address, feeds=feeds, fetch=fetch)
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics, compacted=[settings.fetch.state_topic])
    return settings, connection


def stage_as(settings: Settings, agent: str) -> FetchStage:
    fetch = settings.fetch.model_copy(update={"user_agent": agent})
    named = settings.model_copy(update={"fetch": fetch})
    return FetchStage(
        named,
        KafkaConnection(settings.kafka.bootstrap_servers, settings.kafka),
        fetcher=Fetcher(fetch, resolver=StaticResolver()),
    )


def attempts(stage: FetchStage, feed_id: str) -> int:
    status = stage.feed_status(feed_id)
    return len(status.attempts) if status else 0


async def test_registry_add_remove_and_graceful_handover(broker_address: str, server: FeedServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    settings, connection = await registry_settings(
        broker_address,
        feeds=[{"id": "seeded", "url": f"{base}/etag?f=seeded", "interval": INTERVAL}],
        session_timeout=6,
        heartbeat_interval=0.5,
        startup_spread=0.2,
    )
    topic = settings.topics.feeds

    def requests(feed: str) -> list[tuple[str, str | None]]:
        return [
            (r.headers["User-Agent"], r.headers.get("If-None-Match"))
            for r in list(server.requests)
            if r.query.get("f") == feed
        ]

    a = stage_as(settings, "a")
    b = stage_as(settings, "b")
    await a.start()
    try:
        await until(lambda: attempts(a, "seeded") >= 1)
        assert "seeded" in await read_feeds(connection, topic)  # config feeds are seeded into the topic
        await write_feeds(
            connection, topic, [("added", FeedConfig(id="added", url=f"{base}/etag?f=added", interval=0.2))]
        )
        await until(lambda: attempts(a, "added") >= 2)
        await write_feeds(connection, topic, [("added", None)])
        await until(lambda: a.feed_status("added") is None)
        removed_at = len(requests("added"))
        assert a.health().partitions == (0, 1, 2)

        await b.start()  # joins: the partitions are shared out
        await until(lambda: bool(b.health().partitions) and bool(a.health().partitions))
        assert set(a.health().partitions or ()) | set(b.health().partitions or ()) == {0, 1, 2}
        await a.stop()  # leaves: everything moves to b
        await until(lambda: b.health().partitions == (0, 1, 2))
        await until(lambda: any(agent == "b" for agent, _ in requests("seeded")))
        await asyncio.sleep(INTERVAL)
    finally:
        await a.stop()
        await b.stop()
    assert len(requests("added")) == removed_at  # a removed feed is not fetched any more
    seeded = [r for r in server.requests if r.query.get("f") == "seeded"]
    first_b = next(i for i, r in enumerate(seeded) if r.headers["User-Agent"] == "b")
    assert first_b > 0 and seeded[first_b - 1].headers["User-Agent"] == "a"
    # b resumed with a's validators: a conditional request, answered 304, nothing downloaded again
    assert seeded[first_b].headers.get("If-None-Match") is not None
    status = b.feed_status("seeded")
    assert status is not None and status.attempts[0].outcome.value == "ok"  # a's history came along
    assert [a.outcome.value for a in status.attempts[1:]] == ["not_modified"] * (len(status.attempts) - 1)
    assert all(r.headers["User-Agent"] == "b" for r in seeded[first_b:])


async def test_feeds_move_to_their_hosts_partition_and_follow_a_host_change(
    tmp_path: Path, broker_address: str, server: FeedServer
) -> None:
    """A definition written by feed id (as before feeds were placed by host) is fetched where
    it is; ``ingestor feeds place`` moves it to its host's partition; redefined on another
    host, it moves again.  Throughout, the one stage owning every partition holds it once."""
    settings, connection = await registry_settings(broker_address, startup_spread=0.1)
    topic = settings.topics.feeds
    partitions = settings.topics.partitions
    first = f"http://127.0.0.1:{server.port}/etag?f=mover"
    # another name of the same server, in another partition
    other = next(
        f"http://n{n}.test:{server.port}/etag?f=mover"
        for n in range(100)
        if host_partition(f"http://n{n}.test/", partitions) != host_partition(first, partitions)
    )
    resolver = StaticResolver({urlsplit(other).hostname or "": "127.0.0.1"})
    legacy = (host_partition(first, partitions) + 1) % partitions
    producer = await connection.start_producer()
    try:  # by id, in a partition that is not its host's
        feed = FeedConfig(id="mover", url=first, interval=0.2)
        await producer.send_and_wait(topic, encode_feed(feed), key=b"mover", partition=legacy)
    finally:
        await producer.stop()

    stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=resolver))
    await stage.start()
    try:
        await until(lambda: attempts(stage, "mover") >= 1 and stage.partition_of("mover") == legacy)
        config = write_config(
            tmp_path / "c.yaml",
            {"kafka": {"bootstrap_servers": broker_address}, "topics": settings.topics.model_dump()},
        )
        dry = await asyncio.to_thread(cli, "feeds", "place", "--dry-run", "--config", str(config))
        assert json.loads(dry.stdout) == {"feeds": 1, "misplaced": 1, "moved": 0}, dry.stderr
        placed = await asyncio.to_thread(cli, "feeds", "place", "--config", str(config))
        assert json.loads(placed.stdout) == {"feeds": 1, "misplaced": 1, "moved": 1}, placed.stderr
        await until(lambda: stage.partition_of("mover") == host_partition(first, partitions))
        assert (await read_feeds_placed(connection, topic))["mover"][0] == host_partition(first, partitions)
        # still polled after the move (counted by the stage, its only feed: the feed's history
        # keeps its last 10 attempts, so its length stops growing once full)
        fetched = stage.health().fetches
        await until(lambda: stage.health().fetches > fetched)

        await write_feeds(connection, topic, [("mover", FeedConfig(id="mover", url=other, interval=0.2))])
        await until(lambda: stage.partition_of("mover") == host_partition(other, partitions))
        await until(lambda: any(r.host.startswith("n") for r in list(server.requests)))
        status = stage.feed_status("mover")
        assert status is not None and status.url == other
        assert stage.health().feeds == 1
        registered = await read_feeds_placed(connection, topic)
        assert registered["mover"] == (
            host_partition(other, partitions),
            encode_feed(FeedConfig(id="mover", url=other, interval=0.2)),
        )
        again = await asyncio.to_thread(cli, "feeds", "place", "--dry-run", "--config", str(config))
        assert json.loads(again.stdout)["misplaced"] == 0
    finally:
        await stage.stop()
