"""Parse and dedup stages against the real embedded broker: created/updated events, nothing
twice across a dedup restart, poison messages to the DLQ while the rest flows on."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from consumers.dedup.service import DedupStage
from consumers.parse.service import ParseStage
from ingestor import headers as hdr
from ingestor.kafka import KafkaConnection, ensure_topics
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce, read_topic, values


def rss(entries: list[tuple[str, str, str]]) -> bytes:
    items = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://example.org/{guid}</link>"
        f"<description>{body}</description><pubDate>Mon, 04 Nov 2024 08:36:00 +0200</pubDate></item>"
        for guid, title, body in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def raw_headers(url: str = "https://example.org/feed.xml") -> list[tuple[str, bytes]]:
    return hdr.build(
        [
            (hdr.URL, url),
            (hdr.CONTENT_TYPE, "application/rss+xml"),
            (hdr.FETCHED_AT, "2024-11-04T10:00:00Z"),
            (hdr.FEED_TIMEZONE, "Europe/Kyiv"),
        ]
    )


async def test_parse_and_dedup_publish_exactly_the_right_events(broker_address: str) -> None:
    settings = make_settings(broker_address)
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    topics = settings.topics
    parse, dedup = ParseStage(settings, connection), DedupStage(settings, connection)
    await dedup.start()
    await parse.start()
    v1 = rss([("a", "Alpha", "first text"), ("b", "Beta", "second text")])
    v2 = rss(
        [("c", "Gamma", "new on top"), ("a", "Alpha", "first text, edited"), ("b", "Beta", "second text")]
    )
    try:
        await produce(broker_address, topics.raw, [(b"feed-1", v1, raw_headers())])
        first_records = await read_topic(broker_address, topics.published, expect=2)
        first = values(first_records)
        assert sorted((p["title"], p["event"], p["version"]) for p in first) == [
            ("Alpha", "created", 1),
            ("Beta", "created", 1),
        ]
        # Lineage: each item carries its news.raw record's timestamp, each published message its
        # news.items record's and (copied) the news.raw one's, so one message times every hop.
        (raw,) = await read_topic(broker_address, topics.raw, settle=0.2)
        item_records = await read_topic(broker_address, topics.items, settle=0.2)
        items = {(r.partition, r.offset): r for r in item_records}
        assert {hdr.as_dict(r.headers)["raw-timestamp"] for r in items.values()} == {str(raw.timestamp)}
        for message in first_records:
            lineage = hdr.as_dict(message.headers)
            item = items[(int(lineage["items-partition"]), int(lineage["items-offset"]))]
            assert lineage["items-timestamp"] == str(item.timestamp)
            assert lineage["raw-timestamp"] == str(raw.timestamp)
            assert raw.timestamp <= item.timestamp <= message.timestamp

        await produce(
            broker_address, topics.raw, [(b"feed-1", v2, raw_headers()), (b"feed-1", v2, raw_headers())]
        )
        second = values(await read_topic(broker_address, topics.published, expect=4, settle=2.0))
        assert sorted((p["title"], p["event"], p["version"]) for p in second[2:]) == [
            ("Alpha", "updated", 2),
            ("Gamma", "created", 1),
        ]
        assert len(second) == 4

        # A new dedup instance (a restart) restores from news.published: nothing again.
        await dedup.stop()
        dedup = DedupStage(settings, connection)
        await dedup.start()
        await produce(broker_address, topics.raw, [(b"feed-1", v2, raw_headers())])
        # Poison: garbage on raw, invalid JSON on items; both go to the DLQ and the rest flows.
        await produce(broker_address, topics.raw, [(b"feed-1", b"\x00\x01 not a feed", raw_headers())])
        await produce(broker_address, topics.items, [(b"x", b"{not json", [])])
        v3 = rss([("d", "Delta", "after the poison"), *[("a", "Alpha", "first text, edited")]])
        await produce(broker_address, topics.raw, [(b"feed-1", v3, raw_headers())])
        third = values(await read_topic(broker_address, topics.published, expect=5, settle=2.0))
        assert [(p["title"], p["event"]) for p in third[4:]] == [("Delta", "created")]
        ids = Counter((p["id"], p["version"]) for p in third)
        assert max(ids.values()) == 1, "an (id, version) was published twice"

        dlq = await read_topic(broker_address, topics.dlq, expect=2)
        by_stage = {hdr.as_dict(r.headers)[hdr.DLQ_STAGE]: hdr.as_dict(r.headers) for r in dlq}
        assert set(by_stage) == {"parse", "dedup"}
        assert by_stage["dedup"][hdr.DLQ_ERROR_TYPE] == "invalid_json"
        assert by_stage["parse"][hdr.DLQ_SOURCE_TOPIC] == topics.raw
        assert {r.value for r in dlq} == {b"\x00\x01 not a feed", b"{not json"}

        published = await read_topic(broker_address, topics.published, settle=0.2)
        ce = hdr.as_dict(published[0].headers)
        assert ce["ce_specversion"] == "1.0" and ce["ce_type"] == "news.item.created"

        # An item written without parse's raw-timestamp, or with a garbled one, is published all
        # the same, with its items-timestamp and without a raw-timestamp.
        template = json.loads(next(iter(items.values())).value)
        orphans = [
            (f"orphan-{n}".encode(), json.dumps({**template, "id": f"orphan-{n}"}).encode(), headers)
            for n, headers in enumerate([[], [("raw-timestamp", b"-1")], [("raw-timestamp", b"soon")]])
        ]
        await produce(broker_address, topics.items, orphans)
        fourth = await read_topic(broker_address, topics.published, expect=8, settle=0.5)
        orphaned = [hdr.as_dict(r.headers) for r in fourth if r.key.startswith(b"orphan-")]
        assert len(orphaned) == 3
        assert all("raw-timestamp" not in h and h["items-timestamp"].isdigit() for h in orphaned)
    finally:
        await parse.stop()
        await dedup.stop()
    assert parse.loop.stats.refused == 1 and dedup.loop.stats.refused == 1
    await asyncio.sleep(0)
