"""The consume loop's batch bookkeeping with fakes: concurrency without losing order or commits.

The Kafka behaviour itself (groups, offsets, restarts) is proven against the embedded broker
in tests/integration; here only the loop's own rules are checked, quickly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from ingestor.commit_pipeline import CommitPipeline
from ingestor.consumer_loop import ConsumeLoop, Output, RetryableStageError
from ingestor.kafka import KafkaConnection

TP0 = TopicPartition("news.raw", 0)
TP1 = TopicPartition("news.raw", 1)


def _record(tp: TopicPartition, offset: int, key: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, b"v", None, len(key), 1, [("h", b"1")])


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.events: list[str] | None = None

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        if self.events is not None:
            self.events.append("commit")


class FakeProducer:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[None]:
        self.events.append(f"send:{(value or b'').decode()}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _loop(handler: Any, concurrency: int, *, single_writer: bool = False) -> ConsumeLoop:
    return ConsumeLoop(
        stage="test",
        connection=KafkaConnection("127.0.0.1:9", None),  # type: ignore[arg-type]
        topics=["news.raw"],
        group_id="g",
        handler=handler,
        dlq_topic="news.dlq",
        concurrency=concurrency,
        single_writer=single_writer,
    )


async def test_a_slow_record_does_not_hold_back_other_keys_and_keys_keep_their_order() -> None:
    events: list[str] = []

    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        name = f"{record.key.decode()}{record.offset}" if record.key else "?"
        if record.key == b"slow":
            await asyncio.sleep(0.3)
        else:
            await asyncio.sleep(0.01 * (3 - record.offset % 3))  # later records finish sooner
        events.append(f"done:{name}")
        return [Output("news.items", record.key, name.encode())]

    consumer, producer = FakeConsumer(), FakeProducer(events)
    consumer.events = events
    batch = {
        TP0: [_record(TP0, 0, b"slow"), _record(TP0, 1, b"live"), _record(TP0, 2, b"live")],
        TP1: [_record(TP1, 5, b"other")],
    }
    loop = _loop(handler, concurrency=2)
    pipeline = CommitPipeline(consumer.commit)  # type: ignore[arg-type]
    assert await loop._process_batch(consumer, producer, batch, pipeline)  # type: ignore[arg-type]
    await pipeline.drain()

    sends = [event for event in events if event.startswith("send:")]
    assert sends.index("send:live1") < sends.index("send:live2")  # one key: in order
    assert sends.index("send:live2") < sends.index("send:slow0")  # others did not wait
    assert events[-1] == "commit"  # committed once, after everything
    assert consumer.commits == [{TP0: 3, TP1: 6}]
    assert loop.stats.records == 4


async def test_sequential_by_default() -> None:
    events: list[str] = []

    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        await asyncio.sleep(0.01 if record.offset else 0.05)
        return [Output("news.items", record.key, str(record.offset).encode())]

    consumer = FakeConsumer()
    batch = {TP0: [_record(TP0, 0, b"a"), _record(TP0, 1, b"b")]}
    pipeline = CommitPipeline(consumer.commit)  # type: ignore[arg-type]
    assert await _loop(handler, 1)._process_batch(consumer, FakeProducer(events), batch, pipeline)  # type: ignore[arg-type]
    assert events == ["send:0", "send:1"]


async def test_a_retryable_error_surfaces_as_itself_and_nothing_is_committed() -> None:
    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        if record.key == b"bad":
            raise RetryableStageError("pool restarting")
        return []

    consumer = FakeConsumer()
    batch = {TP0: [_record(TP0, 0, b"ok"), _record(TP0, 1, b"bad")], TP1: [_record(TP1, 0, b"x")]}
    pipeline = CommitPipeline(consumer.commit)  # type: ignore[arg-type]
    with pytest.raises(RetryableStageError):
        await _loop(handler, 2)._process_batch(consumer, FakeProducer([]), batch, pipeline)  # type: ignore[arg-type]
    await pipeline.drain()
    assert consumer.commits == []


class _ClientWhoseStopLetsCancelledErrorOut:
    """aiokafka's consumer.stop() awaits fetch tasks it cancelled and can raise CancelledError."""

    async def stop(self) -> None:
        inner = asyncio.get_running_loop().create_future()
        inner.cancel()
        await inner


async def test_a_client_close_that_raises_cancelled_error_does_not_cancel_the_stage() -> None:
    loop = _loop(lambda record: [], 1)
    await loop._close_clients(_ClientWhoseStopLetsCancelledErrorOut(), None)  # type: ignore[arg-type]
    assert loop._consumer is None


async def test_a_real_cancellation_during_the_close_still_propagates() -> None:
    loop = _loop(lambda record: [], 1)

    class SlowStop:
        async def stop(self) -> None:
            await asyncio.sleep(10)

    task = asyncio.create_task(loop._close_clients(SlowStop(), None))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class HeldProducer:
    """A producer whose acknowledgements come only when the test says so."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(future)
        return future


async def test_the_next_batch_is_handled_while_the_previous_one_waits_for_its_acknowledgements() -> None:
    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        return [Output("news.items", record.key, b"x")]

    consumer, producer = FakeConsumer(), HeldProducer()
    loop = _loop(handler, 1)
    pipeline = CommitPipeline(consumer.commit)  # type: ignore[arg-type]
    first = {TP0: [_record(TP0, 0, b"a")]}
    second = {TP0: [_record(TP0, 1, b"b")]}
    assert await asyncio.wait_for(loop._process_batch(consumer, producer, first, pipeline), 1)  # type: ignore[arg-type]
    assert await asyncio.wait_for(loop._process_batch(consumer, producer, second, pipeline), 1)  # type: ignore[arg-type]
    assert len(producer.acks) == 2 and consumer.commits == []  # both sent, nothing committed yet
    for ack in producer.acks:
        ack.set_result(None)
    await pipeline.drain()
    assert consumer.commits == [{TP0: 1}, {TP0: 2}]


async def test_a_single_writer_waits_for_its_acknowledgements_before_the_next_batch() -> None:
    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        return [Output("news.published", record.key, b"x")]

    consumer, producer = FakeConsumer(), HeldProducer()
    loop = _loop(handler, 1, single_writer=True)
    pipeline = CommitPipeline(consumer.commit)  # type: ignore[arg-type]
    batch = {TP0: [_record(TP0, 0, b"a")]}
    handling = asyncio.create_task(loop._process_batch(consumer, producer, batch, pipeline))  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.sleep(0)
    assert not handling.done() and consumer.commits == []  # held until acknowledged and committed
    producer.acks[0].set_result(None)
    assert await asyncio.wait_for(handling, 1)
    assert consumer.commits == [{TP0: 1}]
