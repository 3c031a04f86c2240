"""What a producer needs beyond aiokafka's public API: its topics pinned, and a way to drop it.

Both work around aiokafka, not the broker, and both are needed on any broker: a producer
that forgets a topic's leader waits for it forever, and a single writer must be able to
discard what it still holds instead of flushing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError


async def pin_producer_topics(producer: AIOKafkaProducer, topics: Iterable[str]) -> None:
    """Track every topic a producer writes to in its metadata from the start.

    aiokafka forgets topics it learnt from the bootstrap metadata as soon as it is asked about
    a new one (the refresh then lists only the new topic), and a batch for a forgotten topic
    waits for a leader forever.  Naming them all up front avoids that.
    """
    wanted = [topic for topic in dict.fromkeys(topics) if topic]
    await producer.client.set_topics(wanted)
    for topic in wanted:
        await producer.partitions_for(topic)


async def abandon_producer(producer: AIOKafkaProducer) -> None:
    """Close a producer *without* sending what it still holds.

    aiokafka keeps a batch whose partition leader is known but unreachable until the broker is
    back, however long that takes, and then sends it. For a stage that must be its partitions'
    only writer that is a duplicate in waiting: by then the group may have given the partitions
    to another member, which restored its state without this batch. ``stop()`` would flush it,
    so this fails the queued batches and stops the sender instead. aiokafka has no public call
    for that; the attributes used here (``_message_accumulator``, ``_sender``, ``_closed``)
    exist in 0.11 to 0.14 (pinned in pyproject.toml) and ``tests/unit/test_kafka_internals.py``
    fails when an upgrade removes one.
    """
    accumulator: Any = getattr(producer, "_message_accumulator", None)
    sender: Any = getattr(producer, "_sender", None)
    if accumulator is not None:
        accumulator.fail_all(KafkaTimeoutError("abandoned: not delivered before the deadline"))
    if sender is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await sender.close()
    producer._closed = True
    with contextlib.suppress(Exception):
        await producer.client.close()
