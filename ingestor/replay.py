"""Re-parse a time range of ``news.raw`` (after a parser fix, say) and produce the items again.

The records go through the parse stage's own handler, so the items are exactly what the stage
would produce today; the dedup stage then publishes only real changes (an item whose content
hash differs from its latest version, and which is not older than it) and nothing else.

The range is found with ListOffsets-by-time, but only where the broker's answer checks out
against the records themselves: Tansu 0.6 answers it with offsets that do not match the
timestamps (it can point past records inside the range), and a replay that silently skips
records would be worse than a slow one.  When the answer does not check out, the partition is
scanned from its beginning and filtered by record timestamp.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from consumers.parse.service import ParseStage
from ingestor.config import Settings
from ingestor.consumer_loop import Refused
from ingestor.kafka import KafkaConnection, pin_producer_topics
from ingestor.scan import partitions_of, read_to_end, tool_consumer

log = structlog.get_logger("ingestor.replay")

#: Outputs in flight before their acks are awaited (bounds memory on a long range).
IN_FLIGHT = 1000


@dataclass
class ReplayReport:
    raw_messages: int = 0
    items_produced: int = 0
    refused: int = 0
    partitions_scanned_from_start: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset")
    return int(moment.timestamp() * 1000)


async def _timestamp_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
    records = batch.get(tp, [])
    return records[0].timestamp if records and records[0].offset == offset else None


async def start_offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int
) -> tuple[dict[TopicPartition, int], list[TopicPartition]]:
    """Where each partition's range starts, and which partitions must be scanned from the start.

    An answer is trusted only if the record at it is not older than ``since_ms`` and the
    record before it is older.
    """
    consumer.assign(tps)
    answers = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
    begin = await consumer.beginning_offsets(tps)
    starts: dict[TopicPartition, int] = {}
    fallback: list[TopicPartition] = []
    for tp in tps:
        answer = answers.get(tp)
        verified = False
        if answer is not None and answer.timestamp >= 0 and answer.offset >= begin[tp]:
            at = await _timestamp_at(consumer, tp, answer.offset)
            verified = at is not None and at >= since_ms
            if verified and answer.offset > begin[tp]:
                before = await _timestamp_at(consumer, tp, answer.offset - 1)
                verified = before is not None and before < since_ms
        if verified and answer is not None:
            starts[tp] = answer.offset
        else:
            starts[tp] = begin[tp]
            fallback.append(tp)
    return starts, fallback


async def replay_range(
    connection: KafkaConnection, settings: Settings, *, since: datetime, until: datetime | None = None
) -> ReplayReport:
    """Re-parse every news.raw record with since <= timestamp <= until; wait for every ack."""
    since_ms, until_ms = to_millis(since), to_millis(until) if until is not None else None
    stage = ParseStage(settings, connection)
    report = ReplayReport()
    consumer = tool_consumer(connection)
    producer: AIOKafkaProducer | None = None
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka 0.14: let the group-less consumer's task start before any stop
    try:
        producer = await connection.start_producer()
        await pin_producer_topics(producer, [settings.topics.items])
        tps = await partitions_of(consumer, settings.topics.raw)
        starts, fallback = await start_offsets(consumer, tps, since_ms)
        report.partitions_scanned_from_start = sorted(tp.partition for tp in fallback)
        pending: list[asyncio.Future[Any]] = []
        async for record in read_to_end(consumer, tps, starts):
            if record.timestamp < since_ms or (until_ms is not None and record.timestamp > until_ms):
                continue
            report.raw_messages += 1
            for output in await _handle(stage, record, report):
                pending.append(
                    await producer.send(
                        output.topic,
                        output.value,
                        key=output.key,
                        partition=output.partition,
                        headers=output.headers or None,
                    )
                )
                report.items_produced += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)  # a failed send raises here: the exit status says so
    finally:
        await stage.stop()  # kills its parse workers (started on the first record)
        if producer is not None:
            await producer.stop()
        await consumer.stop()
    log.info("replay_finished", stage="replay", **report.to_json())
    return report


async def _handle(stage: ParseStage, record: ConsumerRecord[bytes, bytes], report: ReplayReport) -> list[Any]:
    """The stage's handler; a refusal is counted and logged, not dead-lettered again."""
    try:
        return await stage.handle(record)
    except Exception as exc:
        error_type, message = (
            (exc.error_type, exc.message)
            if isinstance(exc, Refused)
            else ("crash", f"{type(exc).__name__}: {exc}")
        )
        report.refused += 1
        log.warning(
            "replay_refused",
            stage="replay",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type=error_type,
            error=message[:300],
        )
        return []
