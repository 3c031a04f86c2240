"""Reading partitions by hand, without a group: to their real end, their last batch, or from a time.

"The end" cannot be taken from ListOffsets alone. Tansu 0.6 reports a partition's end as the
base offset of its last batch + 1, so the tail of a multi-record batch lies beyond it. After a
restart on S3 storage its reported end can lag the data by hundreds of records, until the next
write to the partition. ``read_to_end`` therefore reads a partition until its position passed
the reported end *and* either it is quiet (no record for ``QUIET_S``, and at least
``EMPTY_ANSWERS`` fetch responses for it came back empty since its last record) or the
reported end has moved since the start (a write corrects a lagging end; a partition being
written never goes quiet). On Kafka that is exact. On Tansu it is the only end it cannot get
wrong. Quiet is counted in the broker's answers, not in time alone: on a busy machine a fetch
can take longer than any fixed window, and a slow fetch is not an empty one. The dedup state
restore depends on it: a missed tail means publishing those items again. A caller that must
not wait for a lagging tail passes ``quiet_s=0`` and gets the reported end plus the batch that
reaches it.

``peek_ends`` finds ends (and newest timestamps) cheaply by fetching each partition's last
batch, for ``ingestor status``. ``verified_starts`` checks ListOffsets-by-time against the
records themselves: Tansu 0.6 answers it with offsets that do not match the timestamps.

``Reader`` wraps the group-less consumer all of these run on. aiokafka 0.14's ``stop()`` right
after ``start()`` re-raises the cancellation of such a consumer's internal task that never
ran; one loop turn after the start lets it run, so ``async with`` does that once, for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

#: How long a partition past its reported end must stay without records to count as read.
#: The evidence is the broker's empty answers (below); the time is a floor on top of them, and
#: every 100 ms of it is 100 ms more before a restarted dedup publishes (1 s cost 0.5 s of
#: recovery, issue 15).
QUIET_S = 0.5
#: ... and at least this many fetch responses for it must have come back empty since its last
#: record: a fetch slowed down by a busy machine is not an answer, and must not end the read.
EMPTY_ANSWERS = 2
POLL_MS = 250
#: How long ``peek_ends`` waits for the last batches.
TAIL_WAIT_S = 3.0


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, refreshing metadata once if the consumer does not know it yet;
    empty if the topic does not exist (asking does not create it on a tool's connection)."""
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
    TimeoutError once reading takes longer than ``limit_s``.
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
    if quiet_s <= 0:  # the reported end is taken as it is: an empty partition needs no fetch
        remaining = {tp for tp in tps if end[tp] > 0}
    started = time.monotonic()
    last_record_at = dict.fromkeys(tps, started)
    next_refresh = dict.fromkeys(tps, started)
    # Fetch responses for the partition since its last record, told apart from a fetch that is
    # merely slow by the consumer's per-partition response time (``last_poll_timestamp``).
    empty_answers = dict.fromkeys(tps, 0)
    answered_at: dict[TopicPartition, int | None] = {tp: consumer.last_poll_timestamp(tp) for tp in tps}
    deadline = started + limit_s
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {sorted(str(tp) for tp in remaining)} took over {limit_s:.0f}s")
        batch = await consumer.getmany(*remaining, timeout_ms=POLL_MS)
        now = time.monotonic()
        for tp, records in batch.items():
            if records:
                last_record_at[tp] = now
                empty_answers[tp] = 0
            for record in records:
                yield record
        for tp in list(remaining):
            answered = consumer.last_poll_timestamp(tp)
            if answered is not None and answered != answered_at[tp]:
                answered_at[tp] = answered
                if not batch.get(tp):
                    empty_answers[tp] += 1
            if await consumer.position(tp) < end[tp]:
                continue
            answered_empty = quiet_s <= 0 or empty_answers[tp] >= EMPTY_ANSWERS
            quiet = now - last_record_at[tp] >= quiet_s and answered_empty
            if quiet or end[tp] > reported_at_start[tp]:
                # Quiet past the end (the broker answered, more than once, with nothing more),
                # or past an end that moved since the start: a write corrects a lagging end, so
                # everything there was at the start has been read.
                remaining.discard(tp)
            elif now >= next_refresh[tp]:  # still records coming: is the partition being written?
                next_refresh[tp] = now + quiet_s / 2
                end[tp] = max(end[tp], (await consumer.end_offsets([tp]))[tp])


@dataclass(frozen=True, slots=True)
class PartitionEnd:
    """A partition's first offset, its true end, and the timestamp of its newest record."""

    begin: int
    end: int
    last_timestamp_ms: int | None

    @property
    def messages(self) -> int:
        return max(0, self.end - self.begin)


async def peek_ends(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], *, wait_s: float = TAIL_WAIT_S
) -> dict[TopicPartition, PartitionEnd]:
    """Begin, true end and newest timestamp per partition, by reading each partition's last batch.

    The fetch at (reported end - 1) returns the whole batch holding it, so records past a short
    reported end (Tansu's last batch) come with it. A lagging end after a restart is not
    corrected: this is a status overview, not a restore (use ``read_to_end`` for that).
    """
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
        deadline = loop.time() + wait_s
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    last_offset[tp] = max(last_offset.get(tp, -1), record.offset)
                    last_ts[tp] = max(last_ts.get(tp, 0), record.timestamp)
                # Everything up to the reported end is in; what lies past it is the rest of
                # the last batch, which the same fetch already returned.
                pending.discard(tp)
        consumer.unsubscribe()
    return {
        tp: PartitionEnd(begins[tp], max(ends[tp], last_offset.get(tp, -1) + 1), last_ts.get(tp))
        for tp in tps
    }


async def _timestamp_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
    records = batch.get(tp, [])
    return records[0].timestamp if records and records[0].offset == offset else None


async def verified_starts(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], since_ms: int
) -> tuple[dict[TopicPartition, int], list[TopicPartition]]:
    """Where each partition's records from ``since_ms`` on start, and which partitions must be
    scanned from their beginning because the broker's answer did not check out.

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


class Reader:
    """A started group-less consumer for one-shot reads: ``async with connection.reader() as r``.

    Entering starts it (and gives aiokafka the loop turn it needs before a stop, see the
    module docstring); leaving stops it, also when the start failed half-way.
    """

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def __aenter__(self) -> Reader:
        try:
            await self.consumer.start()
            await asyncio.sleep(0)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.consumer.stop()

    async def partitions_of(self, topic: str) -> list[TopicPartition]:
        return await partitions_of(self.consumer, topic)

    def read_to_end(
        self,
        tps: list[TopicPartition],
        start: Mapping[TopicPartition, int] | None = None,
        *,
        limit_s: float = 300.0,
        quiet_s: float = QUIET_S,
    ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        return read_to_end(self.consumer, tps, start, limit_s=limit_s, quiet_s=quiet_s)

    async def peek_ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, PartitionEnd]:
        return await peek_ends(self.consumer, tps)

    async def verified_starts(
        self, tps: list[TopicPartition], since_ms: int
    ) -> tuple[dict[TopicPartition, int], list[TopicPartition]]:
        return await verified_starts(self.consumer, tps, since_ms)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.consumer.assign(tps)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        await self.consumer.seek_to_beginning(*tps)

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        await self.consumer.seek_to_end(*tps)

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        return dict(await self.consumer.getmany(*tps, timeout_ms=timeout_ms))
