"""`ingestor status`: what the pipeline looks like from the broker, for on-call at a glance.

Everything comes from Kafka, not from a running daemon, so it works against any instance (or
none): consumer groups and their lag, feeds the fetch-state topic records as failing, the
time of the newest message on news.published, and the DLQ's size.

Ends of partitions are read, not trusted: Tansu 0.6 answers ListOffsets with (base offset of
the last batch) + 1, so a partition's true end is found by fetching its last batch, which also
yields the newest timestamp.  Committed offsets come from a group consumer's OffsetFetch (the
admin client's variant is not understood by Tansu 0.6).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ingestor.config import Settings
from ingestor.fetch.store import load_states
from ingestor.kafka import KafkaConnection

TAIL_WAIT_S = 3.0


@dataclass(frozen=True, slots=True)
class PartitionEnd:
    begin: int
    end: int
    last_timestamp_ms: int | None

    @property
    def messages(self) -> int:
        return max(0, self.end - self.begin)


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_s(seconds: float | None) -> str | None:
    return _iso_ms(int(seconds * 1000)) if seconds is not None else None


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer.topics()
        found = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found or ())]


async def partition_ends(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, PartitionEnd]:
    """Begin, true end and newest timestamp per partition, by reading each partition's last batch."""
    if not tps:
        return {}
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    last_offset: dict[TopicPartition, int] = {}
    last_ts: dict[TopicPartition, int] = {}
    pending = {tp for tp in tps if ends[tp] > begins[tp]}
    if pending:
        consumer.assign(sorted(pending, key=lambda tp: (tp.topic, tp.partition)))
        for tp in pending:
            consumer.seek(tp, max(begins[tp], ends[tp] - 1))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TAIL_WAIT_S
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    last_offset[tp] = max(last_offset.get(tp, -1), record.offset)
                    last_ts[tp] = max(last_ts.get(tp, 0), record.timestamp)
                # Everything up to the reported end is in; what lies past it is the rest of
                # Tansu's last batch, which the same fetch already returned.
                pending.discard(tp)
        consumer.unsubscribe()
    return {
        tp: PartitionEnd(begins[tp], max(ends[tp], last_offset.get(tp, -1) + 1), last_ts.get(tp))
        for tp in tps
    }


async def _describe_groups(
    connection: KafkaConnection, groups: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """State and member count per group, plus every other group id the cluster knows."""
    described: dict[str, Any] = {}
    others: list[str] = []
    admin = connection.admin()
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # an old broker without ListGroups: only ours
            others = sorted({str(g[0]) for g in await admin.list_consumer_groups()} - set(groups))
        for wanted in groups:  # one per request: Tansu 0.6 garbles a response naming several
            with contextlib.suppress(Exception):
                for response in await admin.describe_consumer_groups([wanted]):
                    for group in response.groups:
                        error_code, group_id, state, _ptype, _protocol, members = group[:6]
                        described[str(group_id)] = {
                            "state": str(state) if not error_code else f"error {error_code}",
                            "members": len(members),
                        }
    finally:
        await admin.close()
    return described, others


async def _committed(
    connection: KafkaConnection, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    consumer = connection.consumer(group_id=group)  # never subscribes, so it never joins the group
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def gather_status(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """The status document ``ingestor status --json`` prints."""
    connection = KafkaConnection(bootstrap, settings.kafka)
    topics = settings.topics
    consumer = connection.consumer(group_id=None)
    try:
        await consumer.start()
        by_topic = {
            t: await _partitions(consumer, t)
            for t in (topics.raw, topics.items, topics.published, topics.dlq)
        }
        ends = await partition_ends(consumer, [tp for tps in by_topic.values() for tp in tps])
    finally:
        await consumer.stop()

    stage_groups = [
        ("parse", settings.parse.group_id, topics.raw),
        ("dedup", settings.dedup.group_id, topics.items),
    ]
    described, other_groups = await _describe_groups(connection, [g for _, g, _ in stage_groups])
    groups = []
    for stage, group, topic in stage_groups:
        committed = await _committed(connection, group, by_topic[topic])
        partitions = []
        for tp in by_topic[topic]:
            end = ends[tp]
            position = committed[tp]
            lag = max(0, end.end - (position if position is not None else end.begin))
            partitions.append({"partition": tp.partition, "committed": position, "end": end.end, "lag": lag})
        info = described.get(group, {})
        groups.append(
            {
                "stage": stage,
                "group": group,
                "topic": topic,
                "state": info.get("state", "unknown"),
                "members": info.get("members"),
                "lag": sum(p["lag"] for p in partitions),
                "partitions": partitions,
            }
        )

    published = [ends[tp] for tp in by_topic[topics.published]]
    newest = max((e.last_timestamp_ms for e in published if e.last_timestamp_ms is not None), default=None)
    return {
        "bootstrap_servers": bootstrap,
        "checked_at": _iso_s(datetime.now(UTC).timestamp()),
        "groups": groups,
        "other_groups": other_groups,
        "feeds": await _feeds(connection, settings),
        "published": {
            "topic": topics.published,
            "messages": sum(e.messages for e in published),
            "last_publish_at": _iso_ms(newest),
        },
        "dlq": {"topic": topics.dlq, "messages": sum(ends[tp].messages for tp in by_topic[topics.dlq])},
    }


async def _feeds(connection: KafkaConnection, settings: Settings) -> dict[str, Any]:
    """Failing feeds as the fetch-state topic records them (failures in a row, next due)."""
    topic = settings.fetch.state_topic
    configured = [f.id for f in settings.feeds if f.enabled]
    if not topic:
        return {
            "source": None,
            "note": "fetch.state_topic is off: failing feeds are only in the feed_fetched log lines",
            "configured": len(configured),
            "failing": [],
            "never_fetched": [],
        }
    states = await load_states(connection, topic, timeout=10.0)
    failing = [
        {
            "feed": feed_id,
            "failures": state.failures,
            "url": state.url,
            "last_attempt_at": _iso_s(state.saved_at),
            "next_due": _iso_s(state.next_due),
        }
        for feed_id, state in sorted(states.items())
        if state.failures > 0
    ]
    return {
        "source": topic,
        "note": "reasons are not stored; see the feed_fetched log lines (docs/logging.md)",
        "configured": len(configured),
        "known": len(states),
        "failing": sorted(failing, key=lambda f: -int(f["failures"])),
        "never_fetched": sorted(set(configured) - set(states)),
    }


def _shown(value: Any) -> str:
    """A value for a rich cell: feed ids and URLs come from feed definitions and OPML files,
    so control characters are escaped (:mod:`ingestor.terminal`) and so is rich markup (a
    ``[link=…]`` in a URL must print as text, not become a hyperlink)."""
    from rich.markup import escape

    from ingestor.terminal import safe_for_terminal

    return escape(safe_for_terminal(str(value)))


def render_table(status: dict[str, Any]) -> None:
    """The same document as rich tables, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]news-ingestor status[/] on {status['bootstrap_servers']} at {status['checked_at']}")
    groups = Table(title="Consumer groups")
    for column in ("stage", "group", "topic", "state", "members", "lag", "lag by partition"):
        groups.add_column(column, justify="right" if column in ("members", "lag") else "left")
    for g in status["groups"]:
        by_partition = " ".join(f"{p['partition']}:{p['lag']}" for p in g["partitions"] if p["lag"])
        groups.add_row(
            g["stage"],
            g["group"],
            g["topic"],
            g["state"],
            str(g["members"] if g["members"] is not None else "?"),
            f"[red]{g['lag']}[/]" if g["lag"] else "0",
            by_partition or "-",
        )
    console.print(groups)

    feeds = status["feeds"]
    table = Table(title=f"Failing feeds (from {feeds['source'] or 'nowhere'})")
    for column in ("feed", "failures", "last attempt", "next due", "url"):
        table.add_column(column)
    for f in feeds["failing"]:
        table.add_row(
            _shown(f["feed"]),
            str(f["failures"]),
            f["last_attempt_at"] or "-",
            f["next_due"] or "-",
            _shown(f["url"]),
        )
    console.print(
        table if feeds["failing"] else f"Failing feeds: none ({feeds['source'] or 'no state topic'})"
    )
    if feeds.get("never_fetched"):
        console.print(f"Never fetched: {', '.join(map(_shown, feeds['never_fetched']))}")
    console.print(f"[dim]{feeds['note']}[/]")

    published, dlq = status["published"], status["dlq"]
    console.print(
        f"Last publish: [bold]{published['last_publish_at'] or 'never'}[/] "
        f"({published['messages']} messages on {published['topic']})"
    )
    colour = "red" if dlq["messages"] else "green"
    console.print(f"DLQ: [{colour}]{dlq['messages']}[/] messages on {dlq['topic']}")
