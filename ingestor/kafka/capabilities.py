"""What the brokers can do, asked once per process and without making a client log an error.

Idempotent producers need InitProducerId, which not every Kafka-protocol broker grants:
Kafka without the IdempotentWrite ACL, a broker too old, or Tansu 0.6 (it answers
UnknownError).  Starting an idempotent aiokafka producer to find out makes aiokafka's sender
log ``Unexpected error during InitProducerIdRequest`` at ERROR before the refusal reaches
us: on the embedded broker the first line a newcomer saw.  So the question is put as a raw
InitProducerId request on a plain client (what aiokafka's sender sends for an idempotent
producer), whose answer is only read, never logged by aiokafka.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    NoError,
    UnknownError,
    UnsupportedVersionError,
    for_code,
)
from aiokafka.protocol.transaction import InitProducerIdRequest

if TYPE_CHECKING:
    from ingestor.kafka.connection import KafkaConnection

#: What InitProducerId answers when a broker has no idempotent producers.
NO_IDEMPOTENCE: tuple[type[KafkaError], ...] = (
    UnknownError,
    UnsupportedVersionError,
    ClusterAuthorizationFailedError,
)
#: aiokafka's default transaction timeout, sent as its sender sends it
_TRANSACTION_TIMEOUT_MS = 60_000
#: bootstrap servers -> the error its brokers refused idempotent producers with, or None where
#: they granted them (asked once per process; an answer that tells neither is not kept)
_IDEMPOTENCE_ANSWERS: dict[str, type[KafkaError] | None] = {}
#: bootstrap servers whose refusal has been logged
_REPORTED: set[str] = set()


def remember_refusal(bootstrap_servers: str, error: type[KafkaError]) -> None:
    """Record a refusal seen by a producer's own start (the probe could not tell)."""
    _IDEMPOTENCE_ANSWERS[bootstrap_servers] = error


def first_report(bootstrap_servers: str) -> bool:
    """True the first time a refusal by these brokers is to be reported: it is logged once."""
    if bootstrap_servers in _REPORTED:
        return False
    _REPORTED.add(bootstrap_servers)
    return True


async def idempotence_refusal(connection: KafkaConnection) -> type[KafkaError] | None:
    """The error these brokers refuse an idempotent producer with; None if they grant one.

    None also when the answer tells neither (a coordinator still loading, a node not ready):
    the idempotent producer's own start then finds out, as it always did.  A broker that
    cannot be reached at all raises here, as the producer's start would have.
    """
    servers = connection.bootstrap_servers
    if servers in _IDEMPOTENCE_ANSWERS:
        return _IDEMPOTENCE_ANSWERS[servers]
    client: Any = AIOKafkaClient(**connection.client_kwargs())
    try:
        await client.bootstrap()
        node = client.get_random_node()
        if node is None:
            return None
        try:
            response = await client.send(
                node,
                InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=_TRANSACTION_TIMEOUT_MS),
            )
        except KafkaError:
            return None
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    error: type[KafkaError] = for_code(response.error_code)
    if error is NoError:
        _IDEMPOTENCE_ANSWERS[servers] = None
        return None
    if issubclass(error, NO_IDEMPOTENCE):
        _IDEMPOTENCE_ANSWERS[servers] = error
        return error
    return None
