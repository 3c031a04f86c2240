"""The ops listener and `ingestor status` against a real daemon on the session broker: /metrics
families and counters that move when a page flows through, /livez, /readyz turning 200 once the
stages are assigned and 503 when one stops, and the status document an operator reads."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ingestor.tools.daemon import Daemon
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce
from tests.integration.live_server import LiveServer
from tests.integration.test_stages_on_broker import raw_headers, rss


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def total(text: str, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, have), v in samples(text).items() if n == name and set(labels.items()) <= set(have))


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def wait_for(predicate: Any, what: str, limit: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await predicate()
        if result:
            return result
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_metrics_probes_and_status(broker_address: str, tmp_path: Path) -> None:
    server = LiveServer()
    base = await server.start()
    server.set("/feed.xml", rss([("a", "Alpha", "first"), ("b", "Beta", "second")]), "application/rss+xml")
    server.set("/junk.xml", b"\x00\x01 definitely not a feed", "application/rss+xml")
    feeds: list[dict[str, object]] = [
        {"id": "ops-good", "url": f"{base}/feed.xml", "interval": 60},
        {"id": "ops-junk", "url": f"{base}/junk.xml", "interval": 60, "format": "feed"},
        {"id": "ops-missing", "url": f"{base}/missing.xml", "interval": 60},
    ]
    labeled = [*(str(f["id"]) for f in feeds), "ops-poison"]
    settings = make_settings(
        broker_address,
        feeds=feeds,
        ops={"listen": "127.0.0.1:0", "labeled_feeds": labeled},
        fetch={"startup_spread": 0},
    )
    daemon = Daemon(settings)
    starting = asyncio.create_task(daemon.start())
    try:
        async with aiohttp.ClientSession() as http:
            while daemon.ops is None or not daemon.ops.port:
                await asyncio.sleep(0.01)
            ops = f"http://127.0.0.1:{daemon.ops.port}"
            assert (await get(http, f"{ops}/livez"))[0] == 200

            status, body = await get(http, f"{ops}/readyz")
            assert status == 503 and json.loads(body)["reasons"], body  # still starting

            await starting
            # Poison on news.raw: the parser refuses it, the DLQ gets it, the rest flows on.
            poison = [(b"ops-poison", b"\x00\x01 not a feed", raw_headers())]
            await produce(broker_address, settings.topics.raw, poison)

            async def ready() -> bool:
                return (await get(http, f"{ops}/readyz"))[0] == 200

            await wait_for(ready, "/readyz 200")
            verdict = json.loads((await get(http, f"{ops}/readyz"))[1])
            assert verdict["ready"] and set(verdict["stages"]) == {"fetch", "parse", "dedup"}

            async def flowed() -> str | None:
                text = (await get(http, f"{ops}/metrics"))[1]
                # The registry is process-wide: count by feed id (these feeds are allowlisted in
                # ops.labeled_feeds), so that other tests in the same pytest process do not matter.
                published = value(text, "ingestor_feed_items_published_total", feed="ops-good")
                refused = value(text, "ingestor_feed_parse_failures_total", feed="ops-poison")
                return text if published == 2 and refused == 1 else None

            text = await wait_for(flowed, "two items published and one DLQ message")
            families = {
                f.name for f in text_string_to_metric_families(text) if f.name.startswith("ingestor_")
            }
            assert len(families) >= 8, families
            assert value(text, "ingestor_feed_fetches_total", feed="ops-good", outcome="ok") == 1
            assert value(text, "ingestor_fetches_total", outcome="ok") >= 1
            assert value(text, "ingestor_fetch_bytes_total") > 0
            assert value(text, "ingestor_feed_consecutive_failures", feed="ops-missing") >= 1
            assert value(text, "ingestor_feed_items_parsed_total", feed="ops-good") == 2
            assert value(text, "ingestor_items_parsed_total", shape="feed") >= 2
            assert value(text, "ingestor_items_published_total", event="created") >= 2
            assert total(text, "ingestor_parse_failures_total") >= 1
            assert total(text, "ingestor_dlq_messages_total", stage="parse") >= 1
            assert value(text, "ingestor_feed_fetches_total", feed="ops-junk", outcome="not_a_feed") == 1
            unlabeled = {
                s.name
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if "feed" in s.labels and not s.name.startswith("ingestor_feed_")
            }
            assert not unlabeled, unlabeled  # no default family carries a feed label
            assert value(text, "ingestor_consumer_records_total", stage="dedup") >= 2
            assert value(text, "ingestor_broker_up") == 1
            assert value(text, "ingestor_broker_connected", stage="parse") == 1
            assert value(text, "ingestor_consumer_assigned_partitions", stage="dedup") == 3
            assert value(text, "ingestor_dedup_state_items") >= 2
            assert value(text, "ingestor_ready") == 1
            lags = [v for (name, _), v in samples(text).items() if name == "ingestor_consumer_lag"]
            assert lags and all(v >= 0 for v in lags)

            config = tmp_path / "config.yaml"
            config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude={"ops"})))

            async def status_settled() -> dict[str, Any] | None:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "ingestor", "status", "--json", "--config", str(config),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await proc.communicate()
                assert proc.returncode == 0, err.decode()
                doc: dict[str, Any] = json.loads(out)
                return doc if all(g["lag"] == 0 for g in doc["groups"]) else None

            doc = await wait_for(status_settled, "status with no lag")
            assert {g["stage"]: g["group"] for g in doc["groups"]} == {
                "parse": settings.parse.group_id,
                "dedup": settings.dedup.group_id,
                "articles": settings.full_text.group_id,  # the fetch stage's article fetcher
            }
            assert doc["articles"]["source"] == settings.full_text.state_topic
            assert doc["articles"]["pending"] == 0
            assert all(g["members"] == 1 for g in doc["groups"]), doc["groups"]
            assert doc["published"]["messages"] == 2 and doc["published"]["last_publish_at"]
            assert doc["dlq"]["messages"] == 1
            assert sorted(f["feed"] for f in doc["feeds"]["failing"]) == ["ops-junk", "ops-missing"]

            # A stage that stops takes the instance out of service, with the reason.
            await daemon.stages["parse"].stop()
            status, body = await get(http, f"{ops}/readyz")
            assert status == 503 and any(r.startswith("parse:") for r in json.loads(body)["reasons"]), body
            assert (await get(http, f"{ops}/livez"))[0] == 200
    finally:
        if not starting.done():
            starting.cancel()
        await daemon.stop()
        await server.stop()
    assert daemon.ops is None
