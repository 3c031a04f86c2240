"""A document that stalls the parser costs one worker until the deadline, not the daemon.

`ingestor run` follows a live page that gains a post every second and, beside it, a feed whose
page takes seconds to parse and changes every second (so it stalls again and again, like the
hostile page that once froze the daemon).  The regexes are being hardened elsewhere, so the
stall must not depend on any of them: the page is a legitimate live page of 20,000 posts
(~8 s to parse here) against a 0.4 s deadline.  Every live post must still be published
within a few seconds, `/livez` must answer throughout, each stalled document must land in
news.dlq as parse_timeout, the metric must count it, and SIGTERM must stop the daemon within
10 s while stalls are going on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from ingestor import headers as hdr
from ingestor.kafka.embedded import free_port
from tests.conftest import make_settings
from tests.integration.daemon_process import Daemon, write_config
from tests.integration.kafka_helpers import read_topic
from tests.integration.live_server import LiveServer

pytestmark = pytest.mark.integration

DEADLINE_S = 0.4
POSTS = 10  # one a second
ON_TIME_S = 5.0

HEAD = "date 2024-11-04\nRiver authority live: the dam repairs, hour by hour\n\n"


def post(index: int, *, slow: bool = False) -> str:
    hour, minute = divmod(index, 60)
    clock = f"{1 + hour % 11}:{minute:02d} PM"
    kind = "Archive entry" if slow else "Live update"
    title = f"{kind} {index}: crews report progress."
    return f"{clock}\u00a0 (Updated:\u00a0)\n\n{title}\n\nDetails of post {index}.\n\n"


def live_page(count: int) -> str:
    return HEAD + "".join(post(i) for i in reversed(range(count)))


def slow_page(version: int) -> str:
    """A real live page, just a very long one: whatever the parser's code, it takes seconds."""
    return f"date 2024-11-04\nThe long archive, edition {version}\n\n" + "".join(
        post(i, slow=True) for i in range(20_000)
    )


async def _collect_published(bootstrap: str, topic: str, seen: dict[str, float]) -> None:
    """Record when each title first shows up on news.published."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    title = re.search(rb'"title":"([^"]*)"', record.value or b"")
                    if title:
                        seen.setdefault(title.group(1).decode(), time.monotonic())
    finally:
        await consumer.stop()


async def _poll_livez(base: str, results: list[tuple[float, int | None]]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
        while True:
            try:
                async with session.get(f"{base}/livez") as response:
                    results.append((time.monotonic(), response.status))
            except (aiohttp.ClientError, TimeoutError):
                results.append((time.monotonic(), None))
            await asyncio.sleep(0.2)


async def test_a_stalling_document_does_not_hold_up_the_live_page(
    tmp_path: Path, broker_address: str
) -> None:
    settings = make_settings(broker_address)
    ops_port = free_port("127.0.0.1")
    ops = f"http://127.0.0.1:{ops_port}"
    server = LiveServer()
    base = await server.start()
    server.set("/live.txt", live_page(1))
    server.set("/slow.txt", slow_page(0))
    config = write_config(
        tmp_path / "config.yaml",
        {
            "kafka": {"bootstrap_servers": broker_address},
            "topics": settings.topics.model_dump(),
            "parse": {"group_id": settings.parse.group_id, "deadline": DEADLINE_S, "workers": 2},
            "dedup": {"group_id": settings.dedup.group_id},
            "fetch": {
                "allow_private_networks": True,
                "state_topic": settings.fetch.state_topic,
                "min_interval": 0.2,
                "startup_spread": 0,
            },
            "ops": {"listen": f"127.0.0.1:{ops_port}"},
            "feeds": [
                {"id": "live", "url": f"{base}/live.txt", "timezone": "Europe/Kyiv", "interval": 0.5},
                {"id": "slow", "url": f"{base}/slow.txt", "timezone": "Europe/Kyiv", "interval": 0.5},
            ],
        },
    )
    seen: dict[str, float] = {}
    livez: list[tuple[float, int | None]] = []
    added: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []
    daemon = Daemon(config)
    try:
        await asyncio.to_thread(daemon.wait_for, "daemon_started", 1, 60)
        tasks.append(asyncio.create_task(_collect_published(broker_address, settings.topics.published, seen)))
        tasks.append(asyncio.create_task(_poll_livez(ops, livez)))
        first = "Live update 0: crews report progress."
        deadline = time.monotonic() + 30
        while first not in seen:
            assert time.monotonic() < deadline, "the first live post was never published"
            assert daemon.process.poll() is None, "\n".join(daemon.lines[-30:])
            await asyncio.sleep(0.1)

        for index in range(1, POSTS + 1):
            server.set("/live.txt", live_page(index + 1))
            added[f"Live update {index}: crews report progress."] = time.monotonic()
            server.set("/slow.txt", slow_page(index))  # changed: fetched, produced and stalled again
            await asyncio.sleep(1.0)
        last = time.monotonic()
        while not set(added) <= set(seen) and time.monotonic() - last < ON_TIME_S + 5:
            await asyncio.sleep(0.1)

        async with aiohttp.ClientSession() as session, session.get(f"{ops}/metrics") as response:
            exposition = await response.text()
        # SIGTERM while the slow page is (most likely) stalling a worker
        stopping_at = time.monotonic()
        code, took = await asyncio.to_thread(daemon.terminate)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.stop()
        daemon.kill()

    missing = sorted(set(added) - set(seen))
    assert not missing, f"never published: {missing}"
    late = {title: round(seen[title] - at, 2) for title, at in added.items() if seen[title] - at > ON_TIME_S}
    assert not late, f"published late (s): {late}"
    polls = [(round(at - stopping_at, 1), status) for at, status in livez if at < stopping_at]
    failed = [(at, status) for at, status in polls if status != 200]
    assert len(polls) > 40 and not failed, f"/livez failed {len(failed)} of {len(polls)}: {failed[:5]}"

    timeouts = re.search(r"^ingestor_parse_timeouts_total ([0-9.]+)$", exposition, re.MULTILINE)
    assert timeouts is not None and float(timeouts.group(1)) >= 3, exposition[-2000:]
    assert re.search(r'^ingestor_parse_worker_restarts_total\{reason="timeout"\} [1-9]', exposition, re.M)

    dlq = await read_topic(broker_address, settings.topics.dlq, expect=3, settle=0.5, limit_s=10)
    kinds = {(record.key, hdr.as_dict(record.headers)[hdr.DLQ_ERROR_TYPE]) for record in dlq}
    assert kinds == {(b"slow", "parse_timeout")}, kinds
    assert not any("Archive entry" in title for title in seen), "the slow page was parsed after all"

    lags = sorted(round(seen[title] - at, 2) for title, at in added.items())
    print(f"post lags {lags}; timeouts {timeouts.group(1)}; {len(polls)} /livez polls; stop {took:.1f}s")
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s"
    refused = [e for e in daemon.events("raw_parsed") if e.get("status") == "refused"]
    assert refused and {e["reason"] for e in refused} == {"parse_timeout"}
