"""Re-parse a time range of ``news.raw`` (after a parser fix, say) and produce the items again.

The records go through the parse stage's own handler, so the items are exactly what the stage
would produce today; the dedup stage then publishes only real changes (an item whose content
hash differs from its latest version, and which is not older than it) and nothing else.

The range is found with ListOffsets-by-time, but only where the broker's answer checks out
against the records themselves (``Reader.verified_starts``: a broker can answer with offsets
that do not match the timestamps), since a replay that silently skips records would be worse
than a slow one.  When the answer does not check out, the partition is scanned from its
beginning and filtered by record timestamp.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord

from consumers.parse.service import ParseStage
from ingestor.config import Settings
from ingestor.consumer_loop import Refused
from ingestor.kafka import KafkaConnection, pin_producer_topics

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


async def replay_range(
    connection: KafkaConnection, settings: Settings, *, since: datetime, until: datetime | None = None
) -> ReplayReport:
    """Re-parse every news.raw record with since <= timestamp <= until; wait for every ack."""
    since_ms, until_ms = to_millis(since), to_millis(until) if until is not None else None
    stage = ParseStage(settings, connection)
    report = ReplayReport()
    producer: AIOKafkaProducer | None = None
    async with connection.reader() as reader:
        try:
            producer = await connection.start_producer()
            await pin_producer_topics(producer, [settings.topics.items, settings.topics.article_requests])
            tps = await reader.partitions_of(settings.topics.raw)
            starts, fallback = await reader.verified_starts(tps, since_ms)
            report.partitions_scanned_from_start = sorted(tp.partition for tp in fallback)
            pending: list[asyncio.Future[Any]] = []
            async for record in reader.read_to_end(tps, starts):
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
        # what a refused record still owes downstream (a teaser entry whose page was refused)
        return exc.outputs if isinstance(exc, Refused) else []
