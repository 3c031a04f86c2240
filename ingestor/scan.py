"""Read whole partitions to their end, for the one-shot tools (`dlq`, `replay`).

"The end" cannot be taken from ListOffsets alone: Tansu 0.6 reports a partition's end as the
base offset of its last batch + 1, so the tail of a multi-record batch lies beyond it.  A
partition is therefore read until its position passed that end *and* a fetch came back empty,
which is exact on Kafka and on Tansu alike.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ingestor.kafka import KafkaConnection

#: How long an empty fetch must stay empty before a caught-up partition counts as finished.
QUIET_MS = 300


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, refreshing metadata once if the consumer does not know it yet."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, partition) for partition in sorted(partitions or ())]


async def read_to_end(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    start: Mapping[TopicPartition, int] | None = None,
    *,
    limit_s: float = 300.0,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``tps`` from ``start`` (default: the beginning) to the current end.

    ``consumer`` must be started and have no group subscription; this assigns ``tps`` to it.
    """
    if not tps:
        return
    consumer.assign(tps)
    for tp in tps:
        if start is not None and tp in start:
            consumer.seek(tp, start[tp])
        else:
            await consumer.seek_to_beginning(tp)
    end = await consumer.end_offsets(tps)
    remaining = set(tps)
    deadline = time.monotonic() + limit_s
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {sorted(str(tp) for tp in remaining)} took over {limit_s:.0f}s")
        batch = await consumer.getmany(*remaining, timeout_ms=QUIET_MS)
        for records in batch.values():
            for record in records:
                yield record
        for tp in list(remaining):
            if tp not in batch and await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)


def tool_consumer(connection: KafkaConnection, group_id: str | None = None) -> AIOKafkaConsumer:
    """A consumer for a one-shot tool: manual assignment, no auto-commit."""
    return connection.consumer(group_id=group_id, enable_auto_commit=False)
