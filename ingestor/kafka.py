"""Kafka clients built from config, topic set-up, and the commit-after-ack consume loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownError,
    UnsupportedVersionError,
)

from ingestor.config import KafkaConfig, TopicsConfig

log = structlog.get_logger("ingestor.kafka")

#: What InitProducerId answers when a broker has no idempotent producers: Kafka without the
#: IdempotentWrite ACL, a broker too old, or Tansu 0.6 (UnknownError).
_NO_IDEMPOTENCE = (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError)
#: bootstrap servers -> whether its brokers refused idempotent producers (asked once per process)
_IDEMPOTENCE_REFUSED: dict[str, bool] = {}


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are (``embedded`` already resolved) and how to talk to them."""

    bootstrap_servers: str
    config: KafkaConfig

    def client_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": cfg.client_id,
            "request_timeout_ms": int(cfg.request_timeout * 1000),
            "security_protocol": cfg.security_protocol,
        }
        if cfg.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=str(cfg.ssl_cafile) if cfg.ssl_cafile else None)
            if cfg.ssl_certfile:
                context.load_cert_chain(
                    str(cfg.ssl_certfile), str(cfg.ssl_keyfile) if cfg.ssl_keyfile else None
                )
            kwargs["ssl_context"] = context
        if cfg.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = cfg.sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = cfg.sasl_username
            kwargs["sasl_plain_password"] = cfg.sasl_password
        return kwargs

    def producer(self, **overrides: Any) -> AIOKafkaProducer:
        """acks=all, and a linger short enough that freshness stays in the milliseconds."""
        kwargs = self.client_kwargs()
        kwargs.update(acks="all", linger_ms=5, max_request_size=16 * 1024 * 1024, compression_type=None)
        kwargs.update(overrides)
        return AIOKafkaProducer(**kwargs)

    async def start_producer(self) -> AIOKafkaProducer:
        """A started producer, idempotent wherever the brokers allow it.

        Without idempotence a send whose acknowledgement was lost (a timeout, a dropped
        connection) is retried by aiokafka and can be written twice. With ``auto`` the first
        producer of a process asks for it; a broker that refuses (Tansu 0.6 does) is remembered
        and logged once, and plain producers are used from then on.
        """
        mode = self.config.idempotent_producer
        refused = _IDEMPOTENCE_REFUSED.get(self.bootstrap_servers, False)
        if mode is True or (mode == "auto" and not refused):
            producer = self.producer(enable_idempotence=True)
            try:
                await producer.start()
                return producer
            except _NO_IDEMPOTENCE as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                if mode is True:
                    raise
                _IDEMPOTENCE_REFUSED[self.bootstrap_servers] = True
                log.warning(
                    "producer_idempotence_unavailable",
                    bootstrap_servers=self.bootstrap_servers,
                    error=f"{type(exc).__name__}: {exc}",
                    hint="a send retried after a lost acknowledgement may be written twice",
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
        producer = self.producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    def consumer(self, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
        """Manual commits only: offsets are committed by the stage after its output is acked."""
        kwargs = self.client_kwargs()
        kwargs.update(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        kwargs.update(overrides)
        return AIOKafkaConsumer(*topics, **kwargs)

    def admin(self) -> AIOKafkaAdminClient:
        kwargs = self.client_kwargs()
        kwargs.pop("client_id", None)
        return AIOKafkaAdminClient(client_id=f"{self.config.client_id}-admin", **kwargs)


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


async def ensure_topics(
    connection: KafkaConnection, topics: TopicsConfig, *, compacted: Iterable[str | None] = ()
) -> list[str]:
    """Create the pipeline's topics if missing; raw, items and published share a partition count
    because dedup relies on items and published being co-partitioned."""
    wanted = [
        NewTopic(topics.raw, topics.partitions, topics.replication_factor),
        NewTopic(topics.items, topics.partitions, topics.replication_factor),
        NewTopic(topics.published, topics.partitions, topics.replication_factor),
        NewTopic(topics.dlq, topics.partitions, topics.replication_factor),
        NewTopic(
            topics.feeds,
            topics.partitions,
            topics.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        ),
    ]
    wanted += [
        NewTopic(
            name, topics.partitions, topics.replication_factor, topic_configs={"cleanup.policy": "compact"}
        )
        for name in compacted
        if name
    ]
    admin = connection.admin()
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another instance was faster
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def abandon_producer(producer: AIOKafkaProducer) -> None:
    """Close a producer *without* sending what it still holds.

    aiokafka keeps a batch whose partition leader is known but unreachable until the broker is
    back, however long that takes, and then sends it. For a stage that must be its partitions'
    only writer that is a duplicate in waiting: by then the group may have given the partitions
    to another member, which restored its state without this batch. ``stop()`` would flush it,
    so this fails the queued batches and stops the sender instead. aiokafka has no public call
    for that; the attributes used here exist in 0.11 to 0.14 (pinned in pyproject.toml).
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
