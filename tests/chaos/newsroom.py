"""A loopback newsroom that keeps an RSS feed and a live page changing, fast, for the chaos suite.

Each feed moves through *generations*: every generation adds new entries on top and edits one
entry further down.  A feed moves to its next generation only once the current body has been
seen on ``news.raw``: no version is ever served so briefly that no fetcher could have got it,
so the expected output is exactly "every generation, in order", and anything missing from
``news.published`` is a loss by the pipeline.  A pipeline that loses a fetched body stalls
its feed, which the suite reports as lost items.

The expected (id, version, hash) set is computed with the parse code itself from the served
bodies (ids and hashes do not depend on the fetch time).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.parse import RawDocument, parse_document

CAPTURE_HEAD = """date 2024-11-04 Skip to content
Chaos monkeys inspect the pipeline, engineers say

by Olena Test November 4, 2024 9:15 AM 3 min read

The monkeys arrived at dawn and pulled every cable they could reach.

Engineers expect nothing to be lost and nothing to be published twice.

Authors: Olena Test
"""


@dataclass
class FeedScript:
    """One feed's generations: ``new_per_gen`` entries on top, ``edits_per_gen`` edits below, a window."""

    feed_id: str
    path: str
    content_type: str
    fmt: str
    new_per_gen: int
    window: int
    max_entries: int
    edits_per_gen: int = 1
    entries: list[tuple[int, int]] = field(default_factory=list)  # (entry number, revision), newest first
    generation: int = 0
    next_number: int = 0
    bodies: list[bytes] = field(default_factory=list)  # every generation, in order
    edits: int = 0

    def advance(self) -> bool:
        """Make the next generation; False once the feed has no room for more entries."""
        if self.next_number + self.new_per_gen > self.max_entries:
            return False
        fresh = [(self.next_number + i, 0) for i in range(self.new_per_gen)]
        self.next_number += self.new_per_gen
        self.entries = list(reversed(fresh)) + self.entries
        self.entries = self.entries[: self.window]
        below = self.entries[self.new_per_gen :]
        for k in range(min(self.edits_per_gen, len(below))):  # edit older entries, round robin
            index = (self.generation * self.edits_per_gen + k) % len(below)
            number, revision = below[index]
            below[index] = (number, revision + 1)
            self.edits += 1
        self.entries = self.entries[: self.new_per_gen] + below
        self.generation += 1
        self.bodies.append(self.render())
        return True

    def render(self) -> bytes:
        if self.fmt == "feed":
            return _rss(self.entries)
        return _capture(self.entries)


def _body_text(number: int, revision: int) -> str:
    text = f"Report {number} from the chaos desk: the situation is developing."
    return text + "".join(f" Correction {r}: more details were added." for r in range(1, revision + 1))


def _rss(entries: list[tuple[int, int]]) -> bytes:
    items = "".join(
        f"<item><guid isPermaLink='false'>rss-{n}</guid><title>Chaos item {n}</title>"
        f"<link>https://example.org/news/{n}</link><description>{_body_text(n, r)}</description>"
        f"<pubDate>Mon, 04 Nov 2024 08:36:00 +0000</pubDate></item>"
        for n, r in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Chaos</title>'
        f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def _clock(minute_of_day: int) -> str:
    hour, minute = divmod(minute_of_day, 60)
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour % 12) or 12}:{minute:02d} {suffix}"


def _capture(entries: list[tuple[int, int]]) -> bytes:
    # Fragment n is at minute n of 2024-11-04 (UTC feed): newest first, all on the capture date.
    parts = [
        f"{_clock(n)}\u00a0 (Updated:\u00a0)\n\nLive update number {n}.\n\n{_body_text(n, r)}\n"
        for n, r in entries
    ]
    return (CAPTURE_HEAD + "".join(parts)).encode()


def expected_versions(script: FeedScript, url: str) -> dict[str, list[str]]:
    """id -> the content hashes its versions must have, in order, from the served generations."""
    versions: dict[str, list[str]] = {}
    for body in script.bodies:
        doc = RawDocument(
            body=body,
            url=url,
            feed_id=script.feed_id,
            fetched_at=datetime(2024, 11, 4, 23, 0, tzinfo=UTC),
            content_type=script.content_type,
            timezone="UTC",
            format="feed" if script.fmt == "feed" else "text",
        )
        for item in parse_document(doc):
            seen = versions.setdefault(item.id, [])
            if not seen or seen[-1] != item.content_hash:
                seen.append(item.content_hash)
    return versions


class Newsroom:
    """The aiohttp server and the news.raw watcher, in a thread with its own event loop."""

    def __init__(
        self, bootstrap: str, raw_topic: str, scripts: list[FeedScript], min_period: float = 1.0
    ) -> None:
        self.bootstrap = bootstrap
        self.raw_topic = raw_topic
        self.scripts = {script.path: script for script in scripts}
        self.seen_on_raw: set[str] = set()
        self.hits = 0
        self.port = 0
        self.frozen = False  # stop advancing (the run has its volume)
        self.min_period = min_period  # paces the volume over the whole run
        self._advanced_at: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="newsroom")
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Future[None]] = []
        self._runner: web.AppRunner | None = None
        self._positions: dict[TopicPartition, int] = {}
        for script in scripts:
            script.advance()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_server(), self._loop).result(10)
        self._tasks.append(asyncio.run_coroutine_threadsafe(self._watch_raw(), self._loop))

    def stop(self) -> None:
        async def shutdown() -> None:
            self._stop.set()
            await asyncio.sleep(0.6)
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        for task in self._tasks:
            with contextlib.suppress(Exception):
                task.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start_server(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def _serve(self, request: web.Request) -> web.Response:
        script = self.scripts.get(request.path)
        if script is None:
            return web.Response(status=404)
        self.hits += 1
        body = script.bodies[-1]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag, "Content-Type": script.content_type})

    def _maybe_advance(self) -> None:
        if self.frozen:
            return
        now = time.monotonic()
        for script in self.scripts.values():
            if now - self._advanced_at.get(script.path, 0.0) < self.min_period:
                continue
            if hashlib.sha256(script.bodies[-1]).hexdigest() in self.seen_on_raw:
                script.advance()
                self._advanced_at[script.path] = now

    async def _watch_raw(self) -> None:
        """Follow news.raw (through broker outages: aiokafka reconnects) and gate the generations."""
        while not self._stop.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                request_timeout_ms=10_000,
            )
            try:
                await consumer.start()
                partitions = consumer.partitions_for_topic(self.raw_topic) or set()
                if not partitions:
                    await consumer.topics()
                    partitions = consumer.partitions_for_topic(self.raw_topic) or set()
                tps = [TopicPartition(self.raw_topic, p) for p in partitions]
                if not tps:
                    raise RuntimeError("no raw topic yet")
                consumer.assign(tps)
                positions = self._positions
                for tp in tps:
                    if tp in positions:
                        consumer.seek(tp, positions[tp])
                    else:
                        await consumer.seek_to_beginning(tp)
                while not self._stop.is_set():
                    batch = await consumer.getmany(timeout_ms=200)
                    for tp, records in batch.items():
                        for record in records:
                            self.seen_on_raw.add(hashlib.sha256(record.value or b"").hexdigest())
                        positions[tp] = records[-1].offset + 1
                    self._maybe_advance()
            except Exception:
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
