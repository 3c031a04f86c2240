"""The commit pipeline's rules with fakes: nothing committed before its acknowledgements and
those of every earlier batch, commits in order, bounded depth, failures stop it.

That the stages built on it lose nothing and publish nothing twice across crashes and
rebalances is proven against the embedded broker in tests/integration and tests/chaos.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from ingestor.commit_pipeline import CommitPipeline, DeliveryTooLate, SentBatch

TP0 = TopicPartition("news.items", 0)
TP1 = TopicPartition("news.items", 1)


class Commits:
    def __init__(self) -> None:
        self.done: list[dict[TopicPartition, int]] = []
        self.fail_with: Exception | None = None

    async def __call__(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.done.append(dict(offsets))


def _acks(count: int) -> list[asyncio.Future[Any]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_is_committed_only_once_all_its_outputs_are_acknowledged() -> None:
    commits = Commits()
    pipeline = CommitPipeline(commits)
    acks = _acks(2)
    await pipeline.put(SentBatch(acks, {TP0: 10}))
    acks[0].set_result(None)
    await _settle()
    assert commits.done == []
    acks[1].set_result(None)
    await pipeline.drain()
    assert commits.done == [{TP0: 10}]
    assert pipeline.waiting == 0


async def test_a_later_batch_acknowledged_first_waits_for_the_earlier_one() -> None:
    commits = Commits()
    committed: list[SentBatch] = []
    pipeline = CommitPipeline(commits, on_committed=committed.append)
    first, second = _acks(1), _acks(1)
    await pipeline.put(SentBatch(first, {TP0: 5, TP1: 3}))
    await pipeline.put(SentBatch(second, {TP0: 9}))
    second[0].set_result(None)
    await _settle()
    assert commits.done == []  # offset 9 would also cover the first batch's unacknowledged records
    first[0].set_result(None)
    await pipeline.drain()
    assert commits.done == [{TP0: 5, TP1: 3}, {TP0: 9}]
    assert [batch.offsets for batch in committed] == [{TP0: 5, TP1: 3}, {TP0: 9}]


async def test_put_waits_while_depth_batches_are_uncommitted() -> None:
    pipeline = CommitPipeline(Commits(), depth=2)
    held = [_acks(1) for _ in range(3)]
    await pipeline.put(SentBatch(held[0], {TP0: 1}))
    await pipeline.put(SentBatch(held[1], {TP0: 2}))
    third = asyncio.create_task(pipeline.put(SentBatch(held[2], {TP0: 3})))
    await _settle()
    assert not third.done()
    held[0][0].set_result(None)
    await asyncio.wait_for(third, 1)
    for acks in held[1:]:
        acks[0].set_result(None)
    await pipeline.drain()


async def test_a_failed_send_stops_the_pipeline_and_nothing_after_it_is_committed() -> None:
    commits = Commits()
    pipeline = CommitPipeline(commits)
    first, second = _acks(1), _acks(1)
    await pipeline.put(SentBatch(first, {TP0: 5}))
    await pipeline.put(SentBatch(second, {TP0: 9}))
    second[0].set_result(None)
    first[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await pipeline.drain()
    assert commits.done == []
    with pytest.raises(ConnectionError):
        pipeline.raise_if_failed()
    with pytest.raises(ConnectionError):
        await pipeline.put(SentBatch([], {TP0: 10}))
    await pipeline.close()


async def test_a_put_waiting_for_room_wakes_with_the_failure() -> None:
    pipeline = CommitPipeline(Commits(), depth=1)
    acks = _acks(1)
    await pipeline.put(SentBatch(acks, {TP0: 1}))
    waiting = asyncio.create_task(pipeline.put(SentBatch([], {TP0: 2})))
    await _settle()
    acks[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 1)
    await pipeline.close()


async def test_a_commit_error_stops_the_pipeline() -> None:
    commits = Commits()
    commits.fail_with = RuntimeError("coordinator gone")
    pipeline = CommitPipeline(commits)
    await pipeline.put(SentBatch([], {TP0: 1}))
    with pytest.raises(RuntimeError):
        await pipeline.drain()


async def test_a_single_writers_batch_past_its_deadline_is_too_late() -> None:
    commits = Commits()
    pipeline = CommitPipeline(commits, delivery_deadline_s=0.05)
    acks = _acks(1)
    await pipeline.put(SentBatch(acks, {TP0: 1}))
    with pytest.raises(DeliveryTooLate):
        await asyncio.wait_for(pipeline.drain(), 2)
    assert commits.done == []


async def test_the_deadline_runs_from_the_send_not_from_when_the_batch_reaches_the_head() -> None:
    commits = Commits()
    pipeline = CommitPipeline(commits, delivery_deadline_s=0.2)
    first, second = _acks(1), _acks(1)
    await pipeline.put(SentBatch(first, {TP0: 1}))
    await pipeline.put(SentBatch(second, {TP0: 2}))
    await asyncio.sleep(0.15)
    first[0].set_result(None)  # in time; the second batch has 0.05 s left, not 0.2 s
    with pytest.raises(DeliveryTooLate):
        await asyncio.wait_for(pipeline.drain(), 2)
    assert commits.done == [{TP0: 1}]


async def test_close_leaves_what_was_not_acknowledged_uncommitted() -> None:
    commits = Commits()
    pipeline = CommitPipeline(commits)
    await pipeline.put(SentBatch(_acks(1), {TP0: 1}))
    await pipeline.close()
    await pipeline.drain()  # nothing left to wait for
    assert commits.done == []
    assert pipeline.waiting == 0
