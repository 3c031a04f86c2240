"""The per-batch membership check against the real broker's group coordinator.

A member whose group is rebalancing, or whose generation is stale, must hear so from the
coordinator before it processes a batch. A withheld batch must come back on the next poll, so
nothing is lost and nothing is processed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from ingestor import consumer_loop
from ingestor.consumer_loop import ConsumeLoop, Output
from ingestor.kafka import KafkaConnection, Membership, confirm_membership, ensure_topics
from ingestor.ops import metrics
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce


class _HoldRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps its member inside the rebalance until released, like a batch still in hand."""

    def __init__(self) -> None:
        self.revoking = asyncio.Event()
        self.release = asyncio.Event()
        self.assigned: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            self.revoking.set()
            await self.release.wait()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)


async def _wait_assigned(consumer: AIOKafkaConsumer, timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)

    await asyncio.wait_for(poll(), timeout)


async def test_coordinator_answers_current_rebalancing_and_fenced(broker_address: str) -> None:
    settings = make_settings(broker_address)
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    group = f"g{uuid.uuid4().hex[:8]}-membership"
    listener = _HoldRevoke()
    first = connection.consumer(group_id=group)
    first.subscribe([settings.topics.items], listener=listener)
    second = connection.consumer(group_id=group)
    await first.start()
    try:
        await _wait_assigned(first)
        assert await confirm_membership(first) is Membership.CURRENT
        stale_generation = first._coordinator.generation

        # A second member joins; the first is held inside the rebalance by its revoke hook.
        second.subscribe([settings.topics.items])

        async def join_second() -> None:
            await second.start()  # returns once the group let it in, i.e. after the rebalance
            await _wait_assigned(second, 60)

        second_joining = asyncio.create_task(join_second())
        await asyncio.wait_for(listener.revoking.wait(), 30)
        assert await confirm_membership(first) is Membership.REBALANCING
        listener.release.set()
        await asyncio.wait_for(second_joining, 60)
        await _wait_assigned(first)
        assert await confirm_membership(first) is Membership.CURRENT

        # A member that missed a generation (as after a session expiry) must not go on. Kafka
        # answers ILLEGAL_GENERATION (fenced); the embedded broker answers REBALANCE_IN_PROGRESS. Either
        # way the batch is withheld and the member rejoins.
        first._coordinator.generation = stale_generation
        assert not (await confirm_membership(first)).owns_partitions
    finally:
        listener.release.set()
        for consumer in (second, first):
            with contextlib.suppress(Exception):
                await consumer.stop()


async def test_a_withheld_batch_is_read_again_and_processed_once(
    broker_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(broker_address)
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    answers = [Membership.REBALANCING, Membership.UNREACHABLE]

    async def flaky_coordinator(consumer: AIOKafkaConsumer) -> Membership:
        if answers:
            return answers.pop(0)
        return await confirm_membership(consumer)

    monkeypatch.setattr(consumer_loop, "confirm_membership", flaky_coordinator)
    seen: list[bytes] = []

    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        seen.append(record.value)
        return []

    loop = ConsumeLoop(
        stage="membership-test",
        connection=connection,
        topics=[settings.topics.items],
        group_id=f"g{uuid.uuid4().hex[:8]}-withheld",
        handler=handler,
        dlq_topic=settings.topics.dlq,
        single_writer=True,
    )
    withheld_before = _withheld("membership-test")
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (f"k{i}".encode(), f"v{i}".encode(), []) for i in range(30)
    ]
    await produce(broker_address, settings.topics.items, messages)
    await loop.start()
    try:
        async with asyncio.timeout(60):
            while len(seen) < len(messages):
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything handed out twice would show up now
    finally:
        await loop.stop()
    assert sorted(seen) == sorted(f"v{i}".encode() for i in range(30))
    assert _withheld("membership-test") - withheld_before == 2
    assert not answers


def _withheld(stage: str) -> float:
    return sum(
        metrics.REGISTRY.get_sample_value("ingestor_batches_withheld_total", {"stage": stage, "reason": r})
        or 0.0
        for r in ("rebalancing", "fenced", "unreachable")
    )
