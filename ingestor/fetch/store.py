"""The fetch-state topic: create it (compacted), read it back whole at start-up.

Writes go through the stage's own producer (after the raw body is acknowledged), so this
module only owns the two things that are not a plain produce.
"""

from __future__ import annotations

import asyncio
import contextlib

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


async def load_states(
    connection: KafkaConnection, topic: str, *, timeout: float = 30.0
) -> dict[str, SavedState]:
    """The latest state per feed id: the topic read from the beginning up to its end at call time."""
    consumer = connection.consumer(group_id=None, enable_auto_commit=False)
    await consumer.start()
    states: dict[str, SavedState] = {}
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return states
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        async with asyncio.timeout(timeout):
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.key is None:
                            continue
                        key = record.key.decode("utf-8", errors="replace")
                        saved = decode(record.value)
                        if saved is None:
                            states.pop(key, None)
                        else:
                            states[key] = saved
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    log.info("fetch_state_loaded", stage="fetch", topic=topic, feeds=len(states))
    return states


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer.topics()
        found = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found or ())]
