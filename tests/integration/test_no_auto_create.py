"""Issue 13: nothing of ours makes the broker auto-create a topic.

The embedded broker auto-creates a topic a metadata request names, with its default
partition count, as Kafka does with ``auto.create.topics.enable``; a control below shows it
still does, so the other assertions are not vacuous.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError

from ingestor.config import KafkaConfig
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.tools.daemon import TopicLayoutError, TopicsMissing, check_copartitioned, require_topics
from tests.commands import run_ingestor
from tests.conftest import make_settings
from tests.integration.kafka_helpers import create_topic, produce
from tests.integration.test_example_consumer import _example


def _topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.published"


async def _exists(bootstrap: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return topic in set(await admin.list_topics())
    finally:
        await admin.close()


async def test_tool_clients_never_create_a_topic_they_ask_about(broker_address: str) -> None:
    kafka = KafkaConfig(bootstrap_servers=broker_address, request_timeout=3)
    tools = KafkaConnection(broker_address, kafka, auto_create_topics=False)
    subscribed, produced, control = _topic(), _topic(), _topic()

    consumer = tools.consumer(subscribed, group_id=None)
    with contextlib.suppress(Exception):  # aiokafka: UnknownTopicOrPartitionError once it gives up
        await consumer.start()
        await asyncio.sleep(1)
    await consumer.stop()
    assert not await _exists(broker_address, subscribed)

    producer = tools.producer()
    await producer.start()
    try:
        with pytest.raises((TimeoutError, KafkaTimeoutError)):  # no metadata ever comes
            await asyncio.wait_for(producer.send(produced, b"x"), 3)
    finally:
        await producer.stop()
    assert not await _exists(broker_address, produced)
    assert await tools.missing_topics([produced, subscribed]) == [produced, subscribed]

    # The control: the same request without the guard does create the topic on this broker.
    plain = KafkaConnection(broker_address, kafka).consumer(control, group_id=None)
    await plain.start()
    await asyncio.sleep(0)
    await plain.stop()
    assert await _exists(broker_address, control)


def test_tail_of_a_missing_topic_says_so_and_creates_nothing(broker_address: str, tmp_path: Path) -> None:
    topic = _topic()
    result = run_ingestor(
        "tail", topic, "--bootstrap-servers", broker_address, "--max", "1", cwd=tmp_path, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"ingestor tail: no topic {topic!r} on {broker_address}"
    assert not asyncio.run(_exists(broker_address, topic))


def test_feeds_add_without_the_feeds_topic_refuses_and_creates_nothing(
    broker_address: str, tmp_path: Path
) -> None:
    settings = make_settings(broker_address)
    feeds = settings.topics.feeds
    (tmp_path / "config.yaml").write_text(
        f"kafka: {{bootstrap_servers: '{broker_address}'}}\ntopics: {{feeds: {feeds}}}\n"
    )
    result = run_ingestor("feeds", "add", "x", "https://example.org/feed.xml", cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"ingestor feeds add: no topic {feeds} on {broker_address}")
    assert not asyncio.run(_exists(broker_address, feeds))


async def test_example_consumer_waits_for_the_topic_instead_of_creating_it(broker_address: str) -> None:
    example = _example()
    topic, group = _topic(), f"g{uuid.uuid4().hex[:8]}"
    handled: list[str] = []

    async def handle(headers: dict[str, str], item: dict[str, object]) -> None:
        handled.append(str(item["title"]))

    kwargs = {"topic": topic, "group_id": group, "handle": handle, "topic_poll_s": 0.3}
    kwargs |= {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 3000}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(example.consume(broker_address, max_messages=1, **kwargs), 2)
    assert not await _exists(broker_address, topic)

    # Started before the topic exists, it picks it up once the daemon (here: the test) creates it.
    waiting = asyncio.create_task(example.consume(broker_address, max_messages=1, **kwargs))
    await asyncio.sleep(1)
    assert not waiting.done() and not await _exists(broker_address, topic)
    await create_topic(broker_address, topic, partitions=2)
    await produce(broker_address, topic, [(b"k", b'{"title": "first"}', [])])
    assert await asyncio.wait_for(waiting, 60) == 1
    assert handled == ["first"]


async def test_the_partition_refusal_says_how_to_recover(broker_address: str) -> None:
    settings = make_settings(broker_address)  # topics.partitions: 3
    topics = settings.topics
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topics.items, 3, 1), NewTopic(topics.published, 2, 1)])
    finally:
        await admin.close()
    with pytest.raises(TopicLayoutError) as refused:
        await check_copartitioned(KafkaConnection(broker_address, settings.kafka), settings)
    message = str(refused.value)
    assert message.startswith(f"{topics.published} has 2 partitions and {topics.items} 3, expected 3")
    assert "probably auto-created" in message
    assert (
        f"kafka-topics.sh --bootstrap-server {broker_address} --delete --topic {topics.published}" in message
    )
    assert "set topics.partitions to 2" in message
    assert "Disable auto.create.topics.enable on production clusters" in message


async def test_without_topics_create_the_daemon_waits_for_the_topics(broker_address: str) -> None:
    """topics.create false: start-up asks whether the topics exist (creating none) and waits."""
    settings = make_settings(broker_address, topics={"create": False})
    connection = KafkaConnection(broker_address, settings.kafka)
    with pytest.raises(TopicsMissing, match=f"{settings.topics.feeds}, {settings.topics.raw}, "):
        await require_topics(connection, settings.topics)
    assert not await _exists(broker_address, settings.topics.raw)
    await ensure_topics(connection, settings.topics)  # what the operator's topic Job does
    await require_topics(connection, settings.topics)
