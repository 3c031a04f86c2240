"""Read whole partitions to their end, for the one-shot tools (`dlq`, `replay`).

"The end" cannot be taken from ListOffsets alone. Tansu 0.6 reports a partition's end as the
base offset of its last batch + 1, so the tail of a multi-record batch lies beyond it. After a
restart on S3 storage its reported end can lag the data by hundreds of records, until the next
write to the partition. A partition is therefore read until its position passed the reported
end *and* either no record came for it for ``QUIET_S`` or the reported end has moved since the
start (a write corrects a lagging end; a partition being written never goes quiet). On Kafka
that is exact. On Tansu it is the only end it cannot get wrong, and the quiet window keeps one
slow fetch from looking like the end.
The dedup state restore depends on it: a missed tail means publishing those items again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ingestor.kafka import KafkaConnection

#: How long a partition past its reported end must stay without records to count as read.
QUIET_S = 1.0
POLL_MS = 250


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
    quiet_s: float = QUIET_S,
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
    reported_at_start = dict(end)
    remaining = set(tps)
    started = time.monotonic()
    last_record_at = dict.fromkeys(tps, started)
    next_refresh = dict.fromkeys(tps, started)
    deadline = started + limit_s
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {sorted(str(tp) for tp in remaining)} took over {limit_s:.0f}s")
        batch = await consumer.getmany(*remaining, timeout_ms=POLL_MS)
        now = time.monotonic()
        for tp, records in batch.items():
            if records:
                last_record_at[tp] = now
            for record in records:
                yield record
        for tp in list(remaining):
            if await consumer.position(tp) < end[tp]:
                continue
            if now - last_record_at[tp] >= quiet_s or end[tp] > reported_at_start[tp]:
                # Quiet past the end, or past an end that moved since the start: a write
                # corrects a lagging end, so everything there was at the start has been read.
                remaining.discard(tp)
            elif now >= next_refresh[tp]:  # still records coming: is the partition being written?
                next_refresh[tp] = now + quiet_s / 2
                end[tp] = max(end[tp], (await consumer.end_offsets([tp]))[tp])


def tool_consumer(connection: KafkaConnection, group_id: str | None = None) -> AIOKafkaConsumer:
    """A consumer for a one-shot tool: manual assignment, no auto-commit."""
    return connection.consumer(group_id=group_id, enable_auto_commit=False)
