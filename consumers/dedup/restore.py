"""Rebuild dedup state from ``news.published``: the output is the source of truth.

Only headers are read (id from the key, version, content hash and source offset from the
headers), so a restore does not parse item JSON; a message without those headers (written by
an older version) falls back to its JSON body.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import structlog
from aiokafka import TopicPartition

from consumers.dedup.decision import PartitionState
from ingestor import headers as hdr
from ingestor.kafka import KafkaConnection

log = structlog.get_logger("consumers.dedup")

VERSION_HEADER = "item-version"
HASH_HEADER = "content-hash"
SOURCE_PARTITION_HEADER = "items-partition"
SOURCE_OFFSET_HEADER = "items-offset"
FETCHED_AT_HEADER = "item-fetched-at"
#: lineage timestamps (ms since the epoch), not read by the restore: when the news.items record
#: was written, and when its news.raw record was (parse's header on news.items, copied as is)
ITEMS_TIMESTAMP_HEADER = hdr.ITEMS_TIMESTAMP
RAW_TIMESTAMP_HEADER = hdr.RAW_TIMESTAMP
#: a restore that takes longer fails the assignment; the consumer is rebuilt and tries again
RESTORE_LIMIT_S = 300.0


def fold_message(
    state: PartitionState, key: bytes | None, value: bytes | None, headers: dict[str, str]
) -> None:
    """Apply one news.published message to the state; malformed ones are skipped."""
    try:
        if VERSION_HEADER in headers and HASH_HEADER in headers and key is not None:
            item_id = key.decode("utf-8")
            version = int(headers[VERSION_HEADER])
            content_hash = headers[HASH_HEADER]
        else:
            data = json.loads(value or b"")
            item_id, version, content_hash = str(data["id"]), int(data["version"]), str(data["content_hash"])
            headers = {FETCHED_AT_HEADER: str(data.get("fetched_at") or ""), **headers}
        source_offset = int(headers.get(SOURCE_OFFSET_HEADER, "-1"))
        fetched_text = headers.get(FETCHED_AT_HEADER)
        fetched_at = datetime.fromisoformat(fetched_text.replace("Z", "+00:00")) if fetched_text else None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        log.warning("restore_skipped_malformed", key=repr(key)[:80])
        return
    state.record_published(item_id, version, content_hash, source_offset, fetched_at)


async def restore_partitions(
    connection: KafkaConnection, published_topic: str, partitions: list[int]
) -> dict[int, PartitionState]:
    """Read each partition of news.published from the beginning to its current end.

    Publishing for these partitions must wait for this: what the restore misses is published
    again. Every record fetched is folded, so reading past the end is always safe.
    """
    states = {partition: PartitionState() for partition in partitions}
    if not partitions:
        return states
    started = time.monotonic()
    tps = [TopicPartition(published_topic, partition) for partition in partitions]
    messages = 0
    async with connection.reader() as reader:
        # Read to the real end, not the reported one (ingestor/kafka/reader.py): a broker's
        # reported end can lag its data, and a missed tail would be published again.
        async for record in reader.read_to_end(tps, limit_s=RESTORE_LIMIT_S):
            fold_message(states[record.partition], record.key, record.value, hdr.as_dict(record.headers))
            messages += 1
    log.info(
        "dedup_state_restored",
        stage="dedup",
        topic=published_topic,
        partitions=partitions,
        messages=messages,
        ids=sum(len(state.seen) for state in states.values()),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
    return states
