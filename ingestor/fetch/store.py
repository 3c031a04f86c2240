"""The fetch-state topic: create it (compacted), read it back whole at start-up.

Writes go through the stage's own producer (after the raw body is acknowledged), so this
module only owns the two things that are not a plain produce.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ingestor.fetch.state import SavedState, decode
from ingestor.kafka import KafkaConnection

log = structlog.get_logger("ingestor.fetch")


async def ensure_state_topic(
    connection: KafkaConnection, topic: str, partitions: int, replication: int
) -> None:
    admin = connection.admin()
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(topic, partitions, replication, topic_configs={"cleanup.policy": "compact"})]
            )
    finally:
        await admin.close()


async def partition_count(connection: KafkaConnection, topic: str) -> int:
    consumer = connection.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka 0.14: let the group-less consumer's task start before stop()
    try:
        return len(await _partitions(consumer, topic))
    finally:
        await consumer.stop()


async def read_latest(
    connection: KafkaConnection,
    topic: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
) -> dict[str, bytes]:
    """The latest value per key of a compacted topic (or of the ``partitions`` named), read from
    the beginning up to its end at call time; a tombstone removes its key.

    Tansu reports a partition's end as the last batch's base offset + 1; the fetch that reaches
    that offset returns the whole last batch, so records past the reported "end" are read too.
    After a broker restart its reported end can lag further (see ingestor/scan.py); this reader
    does not wait for that tail, because it runs inside a rebalance while feeds are parked, and a
    state record it misses costs one unconditional fetch of that feed, nothing more.
    """
    consumer = connection.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka 0.14: let the group-less consumer's task start before stop()
    latest: dict[str, bytes] = {}
    try:
        wanted = None if partitions is None else set(partitions)
        tps = [tp for tp in await _partitions(consumer, topic) if wanted is None or tp.partition in wanted]
        if not tps:
            return latest
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        async with asyncio.timeout(timeout):
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key is None:
                            continue
                        key = record.key.decode("utf-8", errors="replace")
                        if record.value is None:
                            latest.pop(key, None)
                        else:
                            latest[key] = record.value
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return latest


async def load_states(
    connection: KafkaConnection,
    topic: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
) -> dict[str, SavedState]:
    """The latest readable state per feed id (an unreadable record counts as none)."""
    parts = None if partitions is None else sorted(set(partitions))
    raw = await read_latest(connection, topic, timeout=timeout, partitions=parts)
    states = {key: saved for key, value in raw.items() if (saved := decode(value)) is not None}
    log.info(
        "fetch_state_loaded",
        stage="fetch",
        topic=topic,
        feeds=len(states),
        partitions=parts if parts is not None else "all",
    )
    return states


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer.topics()
        found = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found or ())]
