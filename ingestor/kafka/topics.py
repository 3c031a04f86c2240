"""Creating and checking topics through the admin client, the one way the tools and stages do it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ingestor.config import TopicsConfig

if TYPE_CHECKING:
    from ingestor.kafka.connection import KafkaConnection

_COMPACT = {"cleanup.policy": "compact"}


async def ensure_topics(
    connection: KafkaConnection, topics: TopicsConfig, *, compacted: Iterable[str | None] = ()
) -> list[str]:
    """Create the pipeline's topics if missing; raw, items and published share a partition count
    because dedup relies on items and published being co-partitioned."""
    wanted = [
        NewTopic(topics.raw, topics.partitions, topics.replication_factor),
        NewTopic(topics.items, topics.partitions, topics.replication_factor),
        NewTopic(topics.published, topics.partitions, topics.replication_factor),
        NewTopic(topics.dlq, topics.partitions, topics.replication_factor),
        NewTopic(topics.article_requests, topics.partitions, topics.replication_factor),
        NewTopic(topics.feeds, topics.partitions, topics.replication_factor, topic_configs=dict(_COMPACT)),
    ]
    wanted += [
        NewTopic(name, topics.partitions, topics.replication_factor, topic_configs=dict(_COMPACT))
        for name in compacted
        if name
    ]
    return await _create_missing(connection, wanted)


async def ensure_compacted_topic(
    connection: KafkaConnection, topic: str, partitions: int, replication: int
) -> bool:
    """Create one compacted topic (a state topic, a ledger) unless it exists; True if created."""
    created = await _create_missing(
        connection, [NewTopic(topic, partitions, replication, topic_configs=dict(_COMPACT))]
    )
    return bool(created)


async def topic_exists(connection: KafkaConnection, topic: str) -> bool:
    """Whether the cluster has ``topic`` (asked without creating it)."""
    return not await connection.missing_topics([topic])


async def _create_missing(connection: KafkaConnection, wanted: list[NewTopic]) -> list[str]:
    admin = connection.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another instance was faster
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()
