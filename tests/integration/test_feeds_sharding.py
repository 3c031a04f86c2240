"""Three `ingestor run --stage fetch` processes share the feeds; one is SIGKILLed.

A loopback server counts requests per feed and per fetcher (each fetcher has its own
User-Agent).  It listens on one loopback address per feed: feeds are placed in the feeds
topic by host (``ingestor.fetch.placement``), so feeds of one host would all go to one
fetcher.  Checked: every feed is polled all along, by one fetcher at a time; after the
kill the dead fetcher's feeds are picked up by the survivors within the session timeout plus
a few seconds, without a burst of double fetches; and the registry CLI sees the same world.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from ingestor.config import KafkaConfig
from ingestor.kafka import KafkaConnection, ensure_topics
from tests.commands import run_ingestor as cli
from tests.conftest import make_settings
from tests.integration.daemon_process import Daemon, write_config
from tests.integration.test_fetch_support import LoopbackHosts

pytestmark = pytest.mark.integration

FEEDS = 36
INTERVAL = 0.5
SESSION_TIMEOUT = 4.0
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>%s</title></channel></rss>'


@dataclass
class CountingServer:
    """``/feed/<id>``: 304 to the right ETag; logs (time, feed, fetcher) for every request."""

    log: list[tuple[float, str, str]] = field(default_factory=list)
    hosts: LoopbackHosts | None = None

    def url(self, number: int, feed_id: str) -> str:
        """Feed ``feed_id`` on the server's host number ``number`` (1 to FEEDS)."""
        assert self.hosts is not None
        return self.hosts.url(number, f"/feed/{feed_id}")

    async def start(self) -> None:
        async def feed(request: web.Request) -> web.Response:
            feed_id = request.match_info["id"]
            self.log.append((time.monotonic(), feed_id, request.headers.get("User-Agent", "")))
            etag = f'"{feed_id}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(
                body=RSS % feed_id.encode(), content_type="application/rss+xml", headers={"ETag": etag}
            )

        app = web.Application()
        app.router.add_get("/feed/{id}", feed)
        self.hosts = LoopbackHosts(app, FEEDS)
        await self.hosts.start()

    def since(self, start: float, end: float | None = None) -> list[tuple[float, str, str]]:
        return [entry for entry in list(self.log) if entry[0] >= start and (end is None or entry[0] < end)]


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    srv = CountingServer()
    await srv.start()
    yield srv
    assert srv.hosts is not None
    await srv.hosts.close()


def by_feed(log: list[tuple[float, str, str]]) -> dict[str, list[tuple[float, str]]]:
    grouped: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for at, feed_id, agent in log:
        grouped[feed_id].append((at, agent))
    return grouped


def switches(requests: list[tuple[float, str]]) -> int:
    return sum(1 for a, b in itertools.pairwise(requests) if a[1] != b[1])


async def test_three_fetchers_share_feeds_and_survive_a_kill(
    tmp_path: Path, broker_address: str, server: CountingServer
) -> None:
    feeds = [
        {"id": f"feed-{i:02d}", "url": server.url(i + 1, f"feed-{i:02d}"), "interval": INTERVAL}
        for i in range(FEEDS - 1)
    ]
    settings = make_settings(broker_address)
    tag = settings.topics.feeds.split(".")[0]
    fetch = {
        "allow_private_networks": True,
        "state_topic": f"{tag}.fetch-state",
        "group_id": f"{tag}-fetch",
        "session_timeout": SESSION_TIMEOUT,
        "heartbeat_interval": 0.5,
        "min_interval": 0.1,
        "jitter": 0.1,
        "startup_spread": INTERVAL,
        "retries": 0,
        "shutdown_grace": 1,
    }
    common = {
        "kafka": {"bootstrap_servers": broker_address},
        "topics": settings.topics.model_dump(),
        "feeds": feeds,
        "logging": {"level": "INFO"},
    }
    configs = {
        name: write_config(tmp_path / f"{name}.yaml", {**common, "fetch": {**fetch, "user_agent": name}})
        for name in ("fetcher-a", "fetcher-b", "fetcher-c")
    }
    # The pipeline's topics exist before any tool writes (tools never auto-create topics).
    await ensure_topics(
        KafkaConnection(broker_address, KafkaConfig(bootstrap_servers=broker_address)),
        settings.topics,
        compacted=[fetch["state_topic"]],
    )
    # One feed comes only from the registry, written with the CLI (a separate process).
    added = await asyncio.to_thread(
        cli,
        "feeds",
        "add",
        "cli-feed",
        server.url(FEEDS, "cli-feed"),
        "--interval",
        str(INTERVAL),
        "--timezone",
        "Europe/Kyiv",
        "--config",
        str(configs["fetcher-a"]),
    )
    assert added.returncode == 0, added.stderr
    every = {f["id"] for f in feeds} | {"cli-feed"}

    daemons = {
        name: await asyncio.to_thread(Daemon, path, "--stage", "fetch") for name, path in configs.items()
    }
    try:
        # Steady state: all three fetch, each feed from one of them.
        deadline = time.monotonic() + 40
        while True:
            await asyncio.sleep(0.5)
            recent = server.since(time.monotonic() - 2.0)
            agents = {agent for _, _, agent in recent}
            owners = {feed: {a for _, a in reqs} for feed, reqs in by_feed(recent).items()}
            if len(agents) == 3 and set(owners) == every and all(len(a) == 1 for a in owners.values()):
                break
            assert time.monotonic() < deadline, f"no steady state: agents {agents}, {len(owners)} feeds"
        window_start = time.monotonic()
        await asyncio.sleep(3.0)
        steady = by_feed(server.since(window_start))
        assert set(steady) == every
        assert all(len(reqs) >= 4 for reqs in steady.values()), {f: len(r) for f, r in steady.items()}
        assert all(switches(reqs) == 0 for reqs in steady.values())
        owner = {feed: reqs[-1][1] for feed, reqs in steady.items()}
        victim = max(("fetcher-a", "fetcher-b", "fetcher-c"), key=lambda n: list(owner.values()).count(n))
        orphans = {feed for feed, agent in owner.items() if agent == victim}
        assert orphans

        killed_at = time.monotonic()
        daemons[victim].kill()  # SIGKILL: no goodbye to the group, no last state flush
        deadline = killed_at + SESSION_TIMEOUT + 8
        while True:
            await asyncio.sleep(0.25)
            taken = {feed for _, feed, agent in server.since(killed_at) if agent != victim}
            if taken >= orphans:
                break
            assert time.monotonic() < deadline, f"not taken over: {sorted(orphans - taken)}"
        handed_over_in = time.monotonic() - killed_at

        after = time.monotonic()
        await asyncio.sleep(3.0)
        survivors = by_feed(server.since(after))
        assert set(survivors) == every  # every feed polled again, the orphans included
        assert all(len(reqs) >= 4 for reqs in survivors.values())
        assert all(agent != victim for reqs in survivors.values() for _, agent in reqs)

        # Over the whole run since the steady state: one fetcher at a time per feed (a feed moves
        # at most twice: off the dead fetcher, and once more if the eager rebalance reshuffles),
        # never back and forth, and no burst of double fetches at a handover.
        whole = by_feed(server.since(window_start))
        for feed_id, reqs in whole.items():
            agents_in_order = [a for i, (_, a) in enumerate(reqs) if i == 0 or reqs[i - 1][1] != a]
            assert len(agents_in_order) == len(set(agents_in_order)) <= 3, (feed_id, agents_in_order)
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(reqs)]
            close = [g for g in gaps if g < 0.2]
            assert len(close) <= 1, (feed_id, close)

        # The registry from a separate process: the CLI feed's last attempts, by a survivor.
        status = await asyncio.to_thread(
            cli, "feeds", "status", "cli-feed", "--config", str(configs["fetcher-a"])
        )
        doc = json.loads(status.stdout)
        assert doc["registered"] and doc["definition"]["timezone"] == "Europe/Kyiv"
        assert doc["attempts"] and doc["attempts"][0]["status"] in (200, 304)
        assert {"at", "status", "duration_ms", "bytes", "reason", "next_due", "outcome"} <= set(
            doc["attempts"][0]
        )
        assert doc["state"]["next_due"] and doc["state"]["fetcher"]
        listed = await asyncio.to_thread(cli, "feeds", "list", "--config", str(configs["fetcher-a"]))
        assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == every
        print(f"handover after SIGKILL: {handed_over_in:.1f}s (session timeout {SESSION_TIMEOUT}s)")
    finally:
        for daemon in daemons.values():
            daemon.kill()
