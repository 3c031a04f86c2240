"""Inspect the dead-letter topic and send its messages back where they came from after a fix.

A replayed message goes back to its source topic with its original key, value and headers
(the ``dlq-*`` headers dropped), so the stage that refused it sees exactly what it saw the
first time.  What was replayed is recorded per DLQ position in a ledger topic
(``<dlq>.replayed``, compacted) *after* the re-sends are acknowledged: a later replay, with
the same or other filters, skips those positions and never re-sends a message twice.  A plain
consumer-group offset could not do that once filters leave gaps.  A crash between the
re-send and the ledger write can re-send one batch again, which the pipeline absorbs like
any redelivery (deterministic ids, dedup).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord

from ingestor import headers as hdr
from ingestor.config import TopicsConfig
from ingestor.kafka import KafkaConnection, ensure_compacted_topic, pin_producer_topics, topic_exists
from ingestor.models import format_utc

log = structlog.get_logger("ingestor.dlq")

#: How many re-sends are in flight before their acks are awaited and the ledger written.
BATCH = 500


def ledger_topic(dlq_topic: str) -> str:
    return f"{dlq_topic}.replayed"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One dead letter: where it sits in the DLQ, where it came from, and why it was refused."""

    dlq_partition: int
    dlq_offset: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    stage: str | None
    error_type: str | None
    error_message: str | None
    failed_at: str | None
    key: str | None

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> DlqEntry:
        headers = hdr.as_dict(record.headers)
        return cls(
            dlq_partition=record.partition,
            dlq_offset=record.offset,
            source_topic=headers.get(hdr.DLQ_SOURCE_TOPIC),
            source_partition=_int(headers.get(hdr.DLQ_SOURCE_PARTITION)),
            source_offset=_int(headers.get(hdr.DLQ_SOURCE_OFFSET)),
            stage=headers.get(hdr.DLQ_STAGE),
            error_type=headers.get(hdr.DLQ_ERROR_TYPE),
            error_message=headers.get(hdr.DLQ_ERROR_MESSAGE),
            failed_at=headers.get(hdr.DLQ_FAILED_AT),
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        )

    @property
    def position(self) -> tuple[int, int]:
        return (self.dlq_partition, self.dlq_offset)

    def matches(self, stage: str | None, error_type: str | None) -> bool:
        return (stage is None or self.stage == stage) and (
            error_type is None or self.error_type == error_type
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def original_headers(record: ConsumerRecord[bytes, bytes]) -> hdr.Headers:
    """The headers the message had before it was dead-lettered."""
    return [(name, value) for name, value in (record.headers or ()) if not name.startswith("dlq-")]


@dataclass
class ReplayReport:
    selected: int = 0
    replayed: int = 0
    already_replayed: int = 0
    filtered_out: int = 0
    unroutable: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


async def read_dlq(connection: KafkaConnection, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every DLQ record, in partition then offset order (the DLQ is small by nature)."""
    async with connection.reader() as reader:
        tps = await reader.partitions_of(topic)
        records = [record async for record in reader.read_to_end(tps)]
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def list_entries(
    connection: KafkaConnection,
    topic: str,
    *,
    max_entries: int | None = None,
    stage: str | None = None,
    error_type: str | None = None,
) -> list[DlqEntry]:
    entries = [DlqEntry.from_record(r) for r in await read_dlq(connection, topic)]
    selected = [e for e in entries if e.matches(stage, error_type)]
    return selected if max_entries is None else selected[:max_entries]


async def ensure_ledger(connection: KafkaConnection, topics: TopicsConfig) -> str:
    name = ledger_topic(topics.dlq)
    await ensure_compacted_topic(connection, name, 1, topics.replication_factor)
    return name


async def load_ledger(connection: KafkaConnection, topic: str) -> set[tuple[int, int]]:
    """DLQ positions already replayed."""
    done: set[tuple[int, int]] = set()
    for record in await read_dlq(connection, topic):
        try:
            partition, offset = (int(part) for part in (record.key or b"").decode().split(":"))
        except ValueError:
            continue
        if record.value is not None:
            done.add((partition, offset))
    return done


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def replay(
    connection: KafkaConnection,
    topics: TopicsConfig,
    *,
    stage: str | None = None,
    error_type: str | None = None,
    dry_run: bool = False,
    on_entry: Callable[[DlqEntry, bool], None] | None = None,
) -> ReplayReport:
    """Re-send the selected dead letters to their source topics; ``on_entry(entry, replayed)`` is
    called for each one selected (``replayed`` False in a dry run)."""
    report = ReplayReport()
    ledger = ledger_topic(topics.dlq)
    if not dry_run:
        await ensure_ledger(connection, topics)
    done = await load_ledger(connection, ledger) if await topic_exists(connection, ledger) else set()
    todo: list[tuple[DlqEntry, ConsumerRecord[bytes, bytes]]] = []
    for record in await read_dlq(connection, topics.dlq):
        entry = DlqEntry.from_record(record)
        if not entry.matches(stage, error_type):
            report.filtered_out += 1
        elif entry.position in done:
            report.already_replayed += 1
        elif not entry.source_topic:
            report.unroutable += 1
            log.warning("dlq_unroutable", dlq_partition=entry.dlq_partition, dlq_offset=entry.dlq_offset)
        else:
            todo.append((entry, record))
    report.selected = len(todo)
    if dry_run:
        for entry, _ in todo:
            if on_entry is not None:
                on_entry(entry, False)
        return report
    producer = await connection.start_producer()
    try:
        targets = {entry.source_topic for entry, _ in todo if entry.source_topic}
        counts = await _partition_counts(producer, targets | {ledger})
        for chunk in _chunks(todo, BATCH):
            await _send_chunk(producer, chunk, counts, ledger)
            for entry, _ in chunk:
                report.replayed += 1
                if on_entry is not None:
                    on_entry(entry, True)
    finally:
        await producer.stop()
    log.info("dlq_replayed", **report.to_json())
    return report


async def _partition_counts(producer: AIOKafkaProducer, topics: set[str]) -> dict[str, int]:
    """Partition counts of the topics the producer will write to, all pinned in its metadata."""
    await pin_producer_topics(producer, sorted(topics))
    return {topic: len(await producer.partitions_for(topic)) for topic in sorted(topics)}


async def _send_chunk(
    producer: AIOKafkaProducer,
    chunk: list[tuple[DlqEntry, ConsumerRecord[bytes, bytes]]],
    counts: dict[str, int],
    ledger: str,
) -> None:
    """Re-send, wait for every ack, and only then record the positions as replayed."""
    sends = []
    for entry, record in chunk:
        assert entry.source_topic is not None
        partition = entry.source_partition
        if partition is not None and not 0 <= partition < counts.get(entry.source_topic, 0):
            partition = None  # the topic shrank or the header lies: let the key decide
        sends.append(
            await producer.send(
                entry.source_topic,
                record.value,
                key=record.key,
                partition=partition,
                headers=original_headers(record) or None,
            )
        )
    await asyncio.gather(*sends)
    now = format_utc(datetime.now(UTC))
    marks = []
    for entry, _ in chunk:
        value = json.dumps({"replayed_at": now, "to": entry.source_topic}).encode()
        key = f"{entry.dlq_partition}:{entry.dlq_offset}".encode()
        marks.append(await producer.send(ledger, value, key=key, partition=0))
    await asyncio.gather(*marks)
