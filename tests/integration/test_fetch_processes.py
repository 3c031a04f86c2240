"""`ingestor run --stage fetch` with ``fetch.processes: 2``: two fetch processes share the feeds.

A loopback server counts requests per feed.  Checked: both children own feeds (each serves
its own /metrics, on the parent's ops port + 1 + index, and schedules a non-empty share),
together they fetch every feed about once per interval (no feed twice: the consumer group
splits the partitions), the parent's /readyz sums them up; a SIGKILLed child is started again
and the feeds stay fetched; SIGTERM stops the parent and every child.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import make_settings
from tests.integration.daemon_process import Daemon, write_config
from tests.integration.test_fetch_support import LoopbackHosts

pytestmark = pytest.mark.integration

FEEDS = 24
INTERVAL = 1.0
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>%s</title></channel></rss>'


class CountingServer:
    """``/feed/<id>``: 304 to the right ETag; remembers (time, feed) for every request."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str]] = []
        self.hosts: LoopbackHosts | None = None

    async def start(self) -> LoopbackHosts:
        """Served on one loopback host per feed: feeds are shared out by host."""

        async def feed(request: web.Request) -> web.Response:
            feed_id = request.match_info["id"]
            self.log.append((time.monotonic(), feed_id))
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
        return self.hosts

    def counts(self, start: float, end: float) -> Counter[str]:
        return Counter(feed for at, feed in list(self.log) if start <= at < end)


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    srv = CountingServer()
    yield srv
    if srv.hosts is not None:
        await srv.hosts.close()


async def metric(session: aiohttp.ClientSession, port: int, name: str) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not on :{port}"
    return float(found.group(1))


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the kernel's ephemeral range.

    The children listen on the parent's port + 1 + index.  A run taken from the ephemeral range
    (where ``bind(0)`` and outgoing connections get their ports) can be taken by another test's
    socket before a child binds it, which is how this test once failed under parallel load.
    """
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(10_000, max(10_001, low - count))
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no run of free ports found")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


async def test_two_fetch_processes_share_the_feeds(
    tmp_path: Path, broker_address: str, server: CountingServer
) -> None:
    hosts = await server.start()
    feeds = [
        {"id": f"f{i:02d}", "url": hosts.url(i + 1, f"/feed/f{i:02d}"), "interval": INTERVAL}
        for i in range(FEEDS)
    ]
    settings = make_settings(broker_address)
    ops_port = free_port_run(3)
    config = write_config(
        tmp_path / "fetch.yaml",
        {
            "kafka": {"bootstrap_servers": broker_address},
            "topics": settings.topics.model_dump(),
            "feeds": feeds,
            "ops": {"listen": f"127.0.0.1:{ops_port}"},
            "fetch": {
                "allow_private_networks": True,
                "state_topic": settings.fetch.state_topic,
                "group_id": f"{settings.topics.feeds}-fetch",
                "min_interval": 0.1,
                "jitter": 0.05,
                "startup_spread": INTERVAL,
                "retries": 0,
                "session_timeout": 4,
                "heartbeat_interval": 0.5,
                "shutdown_grace": 1,
                "processes": 2,
            },
        },
    )
    daemon = await asyncio.to_thread(
        Daemon, config, "--stage", "fetch", env={"INGESTOR_FETCH__PROCESSES": "2"}
    )
    try:
        started = await asyncio.to_thread(daemon.wait_for, "fetch_process_started", 2, 60)
        assert sorted(e["index"] for e in started) == [0, 1]
        await asyncio.to_thread(daemon.wait_for, "daemon_started", 1, 90)
        children = [e["pid"] for e in started]
        async with aiohttp.ClientSession() as session:
            # both own a share of the feeds, and the shares add up to every feed
            deadline, why = time.monotonic() + 40, None
            while True:
                try:
                    shares = [await metric(session, ops_port + 1 + i, "ingestor_fetch_feeds") for i in (0, 1)]
                except (aiohttp.ClientError, AssertionError) as exc:  # a child still starting
                    shares, why = [0.0, 0.0], exc
                if all(shares) and sum(shares) == FEEDS:
                    break
                assert time.monotonic() < deadline, f"feeds not shared: {shares} {why!r}\n" + "\n".join(
                    line[:300] for line in daemon.lines[-60:]
                )
                await asyncio.sleep(0.5)
            async with session.get(f"http://127.0.0.1:{ops_port}/readyz") as response:
                assert response.status == 200, await response.text()
            deadline = time.monotonic() + 5  # the children report every second
            while (parent := await metric(session, ops_port, "ingestor_fetch_feeds")) != FEEDS:
                assert time.monotonic() < deadline, f"the parent's gauge is not the sum: {parent}"
                await asyncio.sleep(0.2)

            # together: every feed about once per interval, none twice as often (once the group
            # settled: two members joining together may take a second rebalance)
            every = {f["id"] for f in feeds}
            deadline = time.monotonic() + 40
            while set(server.counts(time.monotonic() - 2 * INTERVAL, time.monotonic())) != every:
                assert time.monotonic() < deadline, "the feeds are not all fetched"
                await asyncio.sleep(0.5)
            # a busy machine may cost a heartbeat and so a rebalance (a pause of a few seconds):
            # the window is long enough for every feed, and no feed is fetched by both children
            window = 10.0
            start = time.monotonic()
            await asyncio.sleep(window)
            counts = server.counts(start, time.monotonic())
            assert set(counts) == every
            assert max(counts.values()) <= window / INTERVAL * 1.3 + 1, counts

        # a child killed is started again, and the feeds stay fetched
        assert alive(children[0]), "a fetch process ended on its own:\n" + "\n".join(
            line[:400] for line in daemon.lines if "fetch_process" in line or "error" in line
        )
        os.kill(children[0], 9)
        await asyncio.to_thread(daemon.wait_for, "fetch_process_exited", 1, 20)
        restarted = await asyncio.to_thread(daemon.wait_for, "fetch_process_started", 3, 30)
        assert restarted[-1]["index"] == started[0]["index"]
        killed = time.monotonic()  # the group hands the partitions round again
        while set(server.counts(time.monotonic() - 2 * INTERVAL, time.monotonic())) != every:
            assert time.monotonic() < killed + 40, "the feeds are not all fetched after the restart"
            await asyncio.sleep(0.5)

        pids = [children[1], restarted[-1]["pid"]]
        code, _ = await asyncio.to_thread(daemon.terminate, 20)
        assert code == 0, "\n".join(daemon.lines[-30:])
        assert not any(alive(pid) for pid in pids), "a fetch process outlived its parent"
        assert daemon.events("fetch_processes_stopped")
    finally:
        daemon.kill()
