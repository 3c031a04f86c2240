"""What a producer delivers around a broker outage, on the embedded broker.

A single writer's producer is abandoned, not flushed: a batch held while the broker was away is
never delivered after it comes back (that would be a duplicate once the partitions moved). And
no producer leaves a gap: once an output's delivery failed, a later one of its partition is
never delivered (a re-read would put the earlier output behind it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from ingestor.config import EmbeddedBrokerConfig
from ingestor.kafka import SendsHalted, abandon_producer, halt_on_failed_delivery
from ingestor.kafka.embedded import EmbeddedBroker, free_port
from tests.integration.kafka_helpers import create_topic

TOPIC = "abandon.test"


async def _messages(bootstrap: str) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        batch = await consumer.getmany(tp, timeout_ms=1500)
        return [record.value for record in batch.get(tp, [])]
    finally:
        await consumer.stop()


async def test_a_batch_held_through_an_outage_is_not_delivered_afterwards(tmp_path: Path) -> None:
    config = EmbeddedBrokerConfig(port=free_port("127.0.0.1"), state_dir=tmp_path)
    broker = EmbeddedBroker(config, log_path=tmp_path / "broker.log")
    bootstrap = await broker.start()
    await create_topic(bootstrap, TOPIC)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=60_000)
    await producer.start()
    await producer.send_and_wait(TOPIC, b"before", partition=0)
    await broker.stop()  # the leader stays known, only unreachable: aiokafka holds the batch
    held = await producer.send(TOPIC, b"held through the outage", partition=0)
    await asyncio.sleep(1.0)
    assert not held.done()
    await abandon_producer(producer)  # the stage's teardown after its delivery deadline
    with pytest.raises(KafkaTimeoutError):
        await held
    broker = EmbeddedBroker(config, log_path=tmp_path / "broker-2.log")  # same port, empty storage
    try:
        await broker.start()
        await create_topic(bootstrap, TOPIC)
        await asyncio.sleep(3.0)  # aiokafka would have delivered the held batch by now
        assert await _messages(bootstrap) == []
    finally:
        await broker.stop()


async def test_after_a_failed_delivery_nothing_later_of_its_partition_is_delivered(tmp_path: Path) -> None:
    """Without idempotence aiokafka gives every batch its own deadline: an older batch can expire
    in an outage while a younger one of the same partition waits and is delivered once the
    broker is back. ``halt_on_failed_delivery`` fails the younger one instead."""
    config = EmbeddedBrokerConfig(port=free_port("127.0.0.1"), state_dir=tmp_path)
    broker = EmbeddedBroker(config, log_path=tmp_path / "broker.log")
    bootstrap = await broker.start()
    await create_topic(bootstrap, TOPIC)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=4_000, retry_backoff_ms=100
    )
    await producer.start()
    on_delivery = halt_on_failed_delivery(producer)
    try:
        await producer.send_and_wait(TOPIC, b"before", partition=0)
        await broker.stop()
        older = await producer.send(TOPIC, b"older", partition=0)
        older.add_done_callback(on_delivery)
        await asyncio.sleep(2.5)  # the older batch is being retried: the younger one queues apart
        younger = await producer.send(TOPIC, b"younger", partition=0)
        younger.add_done_callback(on_delivery)
        with pytest.raises(Exception):  # noqa: B017 - whichever error aiokafka expires it with
            await older  # its deadline (4 s) passes about 1.5 s before the younger one's
        broker = EmbeddedBroker(config, log_path=tmp_path / "broker-2.log")  # empty storage
        await broker.start()
        await create_topic(bootstrap, TOPIC)
        with pytest.raises(SendsHalted):
            await younger
        with pytest.raises(SendsHalted):
            await producer.send(TOPIC, b"after the halt", partition=0)
        await asyncio.sleep(3.0)  # without the halt, the younger batch is delivered by now
        assert await _messages(bootstrap) == []
    finally:
        await abandon_producer(producer)
        await broker.stop()
