"""The client factories: producers, consumers and admin clients built from config.

Every aiokafka client of the daemon and the tools is made here, so the broker's gaps are
handled once: idempotence where the brokers grant it (``capabilities``), no topic created
by merely asking about it (``autocreate``), and group-less readers that stop cleanly
(``reader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ingestor.config import ConfigError, KafkaConfig
from ingestor.kafka import capabilities, instance
from ingestor.kafka.autocreate import refuse_auto_creation
from ingestor.kafka.instance import StaticMember
from ingestor.kafka.reader import Reader

log = structlog.get_logger("ingestor.kafka")


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
        """acks=all, and a linger (``kafka.linger``) short enough that freshness stays in the milliseconds."""
        kwargs = self.client_kwargs()
        kwargs.update(
            acks="all",
            linger_ms=int(self.config.linger * 1000),
            max_request_size=16 * 1024 * 1024,
            compression_type=None,
        )
        kwargs.update(overrides)
        producer = AIOKafkaProducer(**kwargs)
        if not self.auto_create_topics:
            refuse_auto_creation(producer.client)
        return producer

    async def start_producer(self) -> AIOKafkaProducer:
        """A started producer, idempotent wherever the brokers allow it.

        Without idempotence a send whose acknowledgement was lost (a timeout, a dropped
        connection) is retried by aiokafka and can be written twice. With ``auto`` the first
        producer of a process asks for it (``capabilities``, without an ERROR line from
        aiokafka); a broker that refuses is remembered and logged once, and plain producers
        are used from then on. With ``true`` a refusal is an error.
        """
        mode = self.config.idempotent_producer
        if mode is True or mode == "auto":
            refusal = await capabilities.idempotence_refusal(self)
            if refusal is None:
                producer = self.producer(enable_idempotence=True)
                try:
                    await producer.start()
                    return producer
                except capabilities.NO_IDEMPOTENCE as exc:  # refused after all: the probe could not tell
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    if mode is True:
                        raise
                    refusal = type(exc)
                    capabilities.remember_refusal(self.bootstrap_servers, refusal)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
            elif mode is True:
                raise refusal()
            if capabilities.first_report(self.bootstrap_servers):
                log.warning(
                    "producer_idempotence_unavailable",
                    bootstrap_servers=self.bootstrap_servers,
                    error=f"{refusal.__name__}: {refusal()}",
                    hint="a send retried after a lost acknowledgement may be written twice",
                )
        producer = self.producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    def group_member(self, group_id: str, role: str) -> StaticMember | None:
        """A static identity for one long-lived member of ``group_id`` (None: join as a dynamic
        member). The owner keeps it across consumer rebuilds, passes it to ``consumer(member=)``
        and releases it when it stops for good; see ``instance``."""
        return instance.claim(self.config, group_id, role)

    def consumer(
        self, *topics: str, group_id: str | None, member: StaticMember | None = None, **overrides: Any
    ) -> AIOKafkaConsumer:
        """Manual commits only: offsets are committed by the stage after its output is acked.

        Every consumer fetches with ``kafka.max_wait`` (``fetch_wait``); a group member also gets
        ``kafka.session_timeout`` and ``kafka.heartbeat_interval`` (unless overridden) and, with
        ``member``, its static ``group.instance.id``.
        """
        cfg = self.config
        kwargs = self.client_kwargs()
        kwargs.update(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            # Tansu 0.6 answers a fetch only when its wait is over, never when records arrive:
            # this wait is the latency of every hop, and of every empty answer a restore counts.
            fetch_max_wait_ms=int(cfg.fetch_wait * 1000),
        )
        if group_id is not None:
            kwargs.update(
                session_timeout_ms=int(cfg.session_timeout * 1000),
                heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
            )
        kwargs.update(overrides)
        if member is not None and instance.static_session_ok(kwargs.get("session_timeout_ms"), member):
            kwargs["group_instance_id"] = member.instance_id
        consumer = AIOKafkaConsumer(*topics, **kwargs)
        if not self.auto_create_topics:
            refuse_auto_creation(consumer._client)
        return consumer

    def reader(self, **overrides: Any) -> Reader:
        """A group-less consumer for reading partitions by hand, as ``async with`` (see Reader)."""
        return Reader(self.consumer(group_id=None, enable_auto_commit=False, **overrides))

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
