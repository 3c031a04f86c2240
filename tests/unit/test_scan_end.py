"""Reading a partition to its real end when the broker's reported end is wrong (the embedded broker)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition

from ingestor.kafka import reader

TP = TopicPartition("t", 0)


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _Log:
    """A partition of ``size`` records whose reported end is ``reported``; ``writes`` more records
    arrive one per poll (a partition being written), moving the reported end with each."""

    def __init__(
        self,
        size: int,
        reported: int,
        writes: int = 0,
        per_fetch: int = 50,
        stall_every: int = 0,
        stall_s: float = 0.0,
    ) -> None:
        self.size, self.reported, self.writes, self.per_fetch = size, reported, writes, per_fetch
        self.stall_every, self.stall_s, self.polls = stall_every, stall_s, 0
        self.at = 0
        self.answered_ms: int | None = None

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.answered_ms

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.at = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP: self.reported}

    async def position(self, tp: TopicPartition) -> int:
        return self.at

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        if self.stall_every and self.polls % self.stall_every == 0:
            await asyncio.sleep(self.stall_s)
            return {}  # a fetch slower than the poll: no answer yet, though the data is there
        self.answered_ms = time.monotonic_ns() // 1000 + self.polls  # the broker answered
        if self.writes:
            self.writes -= 1
            self.size += 1
            self.reported = self.size  # a write corrects the reported end
        upto = min(self.size, self.at + self.per_fetch)
        records = [_Record(offset) for offset in range(self.at, upto)]
        self.at = upto
        return {TP: records} if records else {}


async def _offsets(log: _Log, quiet_s: float = 0.05) -> list[int]:
    return [record.offset async for record in reader.read_to_end(log, [TP], quiet_s=quiet_s, limit_s=10)]  # type: ignore[arg-type]


async def test_a_lagging_end_after_a_restart_does_not_cut_the_tail() -> None:
    # What the embedded broker on S3 reported after a restart under load, and fetches that are sometimes slow.
    log = _Log(size=900, reported=701, stall_every=3)
    assert await _offsets(log) == list(range(900))


async def test_an_empty_reported_end_is_not_trusted_either() -> None:
    assert await _offsets(_Log(size=120, reported=0, stall_every=2)) == list(range(120))


async def test_a_partition_being_written_ends_once_its_end_moved() -> None:
    log = _Log(size=300, reported=300, writes=10_000, per_fetch=1000)
    offsets = await _offsets(log, quiet_s=60.0)  # never quiet: the moving end must end it
    assert offsets[:300] == list(range(300))
    assert len(offsets) < 10_000


async def test_quiet_zero_takes_the_reported_end_and_the_batch_that_reaches_it() -> None:
    # The fetch-state reader: no waiting out a lagging end, but whatever the fetch returned counts.
    log = _Log(size=120, reported=101, per_fetch=60)
    assert await _offsets(log, quiet_s=0.0) == list(range(120))


async def test_quiet_zero_does_not_fetch_an_empty_partition() -> None:
    log = _Log(size=0, reported=0)
    assert await _offsets(log, quiet_s=0.0) == []
    assert log.polls == 0


async def test_fetches_slower_than_the_quiet_window_do_not_end_the_read() -> None:
    # A busy machine: every other fetch takes twice the quiet window to come back. Time alone
    # would call the partition quiet; only empty answers from the broker may.
    log = _Log(size=400, reported=150, per_fetch=40, stall_every=2, stall_s=0.1)
    assert await _offsets(log, quiet_s=0.05) == list(range(400))
