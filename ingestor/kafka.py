"""Kafka clients built from config, topic set-up, and the commit-after-ack consume loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownError,
    UnsupportedVersionError,
)

from ingestor.config import ConfigError, KafkaConfig, TopicsConfig

log = structlog.get_logger("ingestor.kafka")

#: What InitProducerId answers when a broker has no idempotent producers: Kafka without the
#: IdempotentWrite ACL, a broker too old, or Tansu 0.6 (UnknownError).
_NO_IDEMPOTENCE = (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError)
#: bootstrap servers -> whether its brokers refused idempotent producers (asked once per process)
_IDEMPOTENCE_REFUSED: dict[str, bool] = {}


#: Whether a metadata request built in the current context may ask the broker to create the
#: topics it names (see ``refuse_auto_creation``).
_METADATA_AUTO_CREATE: ContextVar[bool] = ContextVar("ingestor_metadata_auto_create", default=True)


def _install_metadata_guard() -> bool:
    """Once per process, let aiokafka's metadata requests say "do not create these topics".

    A metadata request naming a missing topic makes a broker with ``auto.create.topics.enable``
    (Kafka's default, and Tansu) create it with the broker's default partition count: a
    subscriber started before the daemon then leaves news.published with 4 partitions where
    the pipeline needs 6. The protocol has a flag against that (v4+), but aiokafka 0.14 always
    sets it and has no option for it.  Its client builds every metadata request through the
    module's ``MetadataRequest``; this swaps in a subclass that clears the flag when
    ``_METADATA_AUTO_CREATE`` is False in the calling context and changes nothing otherwise.
    Returns False where aiokafka's request has no such field (then only the existence checks
    of the tools stand between them and auto-creation).
    """
    import aiokafka.client as client_module

    base: Any = getattr(client_module, "MetadataRequest", None)
    if base is None or getattr(base, "ingestor_guard", False):
        return base is not None
    try:
        if "allow_auto_topic_creation" not in inspect.signature(base).parameters:
            return False
    except (TypeError, ValueError):
        return False

    class _MetadataRequest(base):  # type: ignore[misc]
        ingestor_guard = True

        def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None):
            if allow_auto_topic_creation is None and not _METADATA_AUTO_CREATE.get():
                allow_auto_topic_creation = False
            super().__init__(topics, allow_auto_topic_creation)

    client_module.MetadataRequest = _MetadataRequest
    return True


def refuse_auto_creation(client: Any) -> None:
    """Make this aiokafka client's metadata requests ask the broker not to create topics.

    ``client`` is the AIOKafkaClient inside a consumer (``_client``) or producer (``client``).
    Its metadata refresh (its own task, or the caller's for ``topics()``) runs with the context
    flag cleared, so other clients in the process keep their behaviour.
    """
    update: Callable[[Any, Any], Awaitable[Any]] | None = getattr(client, "_metadata_update", None)
    if update is None or getattr(client, "ingestor_no_auto_create", False) or not _install_metadata_guard():
        return

    async def without_auto_creation(cluster_metadata: Any, topics: Any) -> Any:
        token = _METADATA_AUTO_CREATE.set(False)
        try:
            return await update(cluster_metadata, topics)
        finally:
            _METADATA_AUTO_CREATE.reset(token)

    client._metadata_update = without_auto_creation
    client.ingestor_no_auto_create = True


def _ssl_context(cfg: KafkaConfig) -> ssl.SSLContext:
    """The TLS context, or a ConfigError naming the key and file.

    The files were readable when the config was loaded; one removed or unusable since (not
    PEM, a key that does not match) would otherwise surface as an OSError that the daemon's
    start-up retries for ever as ``broker_unavailable``.
    """
    key, path = "kafka.ssl_cafile", cfg.ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(path) if path else None)
        if cfg.ssl_certfile:
            key, path = "kafka.ssl_certfile", cfg.ssl_certfile
            context.load_cert_chain(str(cfg.ssl_certfile), str(cfg.ssl_keyfile) if cfg.ssl_keyfile else None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{key}: {path}: cannot be used: {detail}") from None
    return context


class BrokerUnreachable(Exception):
    """No broker answered within the time a one-shot tool allows itself."""

    def __init__(self, bootstrap_servers: str, timeout: float, last_error: BaseException | None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self.last_error = last_error
        super().__init__(f"cannot reach the broker at {bootstrap_servers} within {timeout:g} s")


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """aiokafka logs every failed connection attempt; a tool says it once, in its own words."""
    target = logging.getLogger(logger)
    previous = target.disabled
    target.disabled = True
    try:
        yield
    finally:
        target.disabled = previous


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are (``embedded`` already resolved) and how to talk to them.

    ``auto_create_topics=False`` (the tools): the clients made here ask the brokers not to
    create a topic they merely mention; see ``refuse_auto_creation``.
    """

    bootstrap_servers: str
    config: KafkaConfig
    auto_create_topics: bool = True

    def client_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": cfg.client_id,
            "request_timeout_ms": int(cfg.request_timeout * 1000),
            "security_protocol": cfg.security_protocol,
        }
        if cfg.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = _ssl_context(cfg)
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
        producer = AIOKafkaProducer(**kwargs)
        if not self.auto_create_topics:
            refuse_auto_creation(producer.client)
        return producer

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
        consumer = AIOKafkaConsumer(*topics, **kwargs)
        if not self.auto_create_topics:
            refuse_auto_creation(consumer._client)
        return consumer

    def admin(self) -> AIOKafkaAdminClient:
        kwargs = self.client_kwargs()
        kwargs.pop("client_id", None)
        return AIOKafkaAdminClient(client_id=f"{self.config.client_id}-admin", **kwargs)

    async def wait_reachable(self, timeout: float) -> None:
        """Return once a broker answers a metadata request; BrokerUnreachable after ``timeout``.

        Attempts repeat until the deadline (a broker being restarted gets its chance), each
        bounded by what is left of it, so a black-holed address cannot hold a tool longer.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: BaseException | None = None
        with _quiet("aiokafka"):
            while (remaining := deadline - loop.time()) > 0:
                admin = self.admin()
                try:
                    async with asyncio.timeout(remaining):
                        await admin.start()
                    return
                except (KafkaError, OSError, TimeoutError) as exc:
                    if last is None or not isinstance(exc, TimeoutError):  # keep the telling one
                        last = exc
                finally:
                    with contextlib.suppress(Exception):
                        await admin.close()
                await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
        raise BrokerUnreachable(self.bootstrap_servers, timeout, last)

    async def missing_topics(self, topics: Iterable[str]) -> list[str]:
        """Those of ``topics`` the cluster does not have (asked without creating any)."""
        admin = self.admin()
        await admin.start()
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
        return [topic for topic in dict.fromkeys(topics) if topic not in existing]


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
