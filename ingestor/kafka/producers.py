"""What a producer needs beyond aiokafka's public API: its topics pinned, no gaps, a way to drop it.

All three work around aiokafka, not the broker: a producer that forgets a topic's leader waits
for it forever; without idempotence a failed batch can be followed by a delivered later one of
the same partition; and a single writer must be able to discard what it still holds instead of
flushing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
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


class SendsHalted(KafkaTimeoutError):  # type: ignore[misc]
    """An earlier output of this producer was not delivered, so nothing after it may be."""


def halt_on_failed_delivery(producer: AIOKafkaProducer) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for each send's future: the first failed delivery halts the producer.

    Without idempotence (Tansu has none) aiokafka gives every batch its own deadline, counted
    from the batch's creation. In an outage an older batch of a partition can expire while a
    younger one of the same partition is still queued; the broker comes back and the younger
    one is delivered: a gap. The stage then re-reads its uncommitted input and produces the
    older outputs again, *after* the younger ones, and a downstream consumer that relies on
    per-partition order sees an item's newer text before its older one (dedup would publish the
    newer text under the older version's number and skip the older text as history). A stage
    that handles its next batch before the previous one is acknowledged makes that window wide.

    aiokafka keeps at most one batch per partition in flight, so when a batch fails, every later
    batch of its partition is still queued. The callback fails all of them, and makes the
    producer refuse new sends, in the failure's own callback, which runs before the sender can
    drain that partition again. What reaches the broker is then, per partition, a prefix of what
    was sent; the consume loop's commit pipeline sees the failure and tears the consumer down.
    Uses ``_message_accumulator`` like ``abandon_producer`` (``tests/unit/test_kafka_internals.py``).
    """
    accumulator: Any = getattr(producer, "_message_accumulator", None)

    def on_delivery(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            return
        halt_producer(producer, accumulator)

    return on_delivery


def halt_producer(producer: AIOKafkaProducer, accumulator: Any = None) -> None:
    """Fail and drop every batch ``producer`` still queues, and refuse what it is given from now on.

    ``fail_all`` fails the queued batches' futures and makes the accumulator refuse new messages,
    but leaves the batches queued, and the sender would still send them; so they are dropped too.
    Batches in flight are left alone: each is its partition's oldest, and nothing after it of
    its partition remains.
    """
    accumulator = accumulator if accumulator is not None else getattr(producer, "_message_accumulator", None)
    if accumulator is None or getattr(accumulator, "_exception", None) is not None:
        return
    accumulator.fail_all(SendsHalted("an earlier output of this producer was not delivered"))
    accumulator._batches.clear()


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
