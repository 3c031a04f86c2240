"""The private aiokafka API ingestor/kafka relies on, checked against the installed aiokafka.

aiokafka has no public call for what ``ingestor.kafka`` needs in a few places (see its package
docstring). Each of those reaches is listed here, so that an aiokafka upgrade that moves one
fails this file by name instead of failing a stage at run time. The integration tests
(test_membership, test_abandon_producer, test_no_auto_create, test_producer_idempotence)
check that the behaviour built on them still holds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.producer.sender import Sender
from aiokafka.protocol.group import HeartbeatRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from ingestor.kafka import autocreate

NOWHERE = "127.0.0.1:9"  # never contacted: the clients are built, not started


def _params(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_autocreate_metadata_request_and_metadata_update() -> None:
    request = aiokafka.client.MetadataRequest  # replaced by a subclass once the guard is installed
    assert _params(request)[:2] == ["topics", "allow_auto_topic_creation"]
    assert _params(AIOKafkaClient._metadata_update) == ["cluster_metadata", "topics"]
    assert inspect.iscoroutinefunction(AIOKafkaClient._metadata_update)
    assert autocreate._install_metadata_guard()


def test_membership_group_coordinator() -> None:
    assert _params(GroupCoordinator._send_req) == ["request"]
    assert inspect.iscoroutinefunction(GroupCoordinator._send_req)
    assert callable(GroupCoordinator.request_rejoin) and callable(GroupCoordinator.reset_generation)
    init = inspect.getsource(GroupCoordinator.__init__)
    for attribute in ("self.generation", "self.member_id", "self.group_id"):
        assert attribute in init
    assert _params(HeartbeatRequest) == ["group", "generation_id", "member_id"]


def test_capability_probe_request_and_client() -> None:
    assert _params(InitProducerIdRequest) == ["transactional_id", "transaction_timeout_ms"]
    assert _params(AIOKafkaClient.send)[:2] == ["node_id", "request"]
    for method in ("bootstrap", "get_random_node", "close", "send"):
        assert callable(getattr(AIOKafkaClient, method))


async def test_consumer_and_producer_attributes() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=NOWHERE)
    try:
        assert isinstance(consumer._client, AIOKafkaClient)  # refuse_auto_creation
        assert hasattr(consumer, "_coordinator")  # confirm_membership
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=NOWHERE)
    try:
        assert isinstance(producer.client, AIOKafkaClient)
        assert isinstance(producer._message_accumulator, MessageAccumulator)  # abandon_producer
        assert _params(MessageAccumulator.fail_all) == ["exception"]
        # halt_on_failed_delivery: fail_all also refuses later messages, and a partition has at
        # most one batch in flight (the sender mutes it), so later batches are still queued
        assert producer._message_accumulator._exception is None
        assert isinstance(producer._message_accumulator._batches, dict)  # queued, not in flight
        assert "self._pending_batches.add" in inspect.getsource(MessageAccumulator._pop_batch)
        assert "self._exception" in inspect.getsource(MessageAccumulator.add_message)
        assert "_muted_partitions" in inspect.getsource(Sender._send_produce_req)
        assert isinstance(producer._sender, Sender)
        assert inspect.iscoroutinefunction(Sender.close)
        assert producer._closed is False
    finally:
        await producer.stop()
