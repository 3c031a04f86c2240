"""Metadata requests that ask the broker not to create the topics they name.

A metadata request naming a missing topic makes a broker with ``auto.create.topics.enable``
(Kafka's default, and the embedded Tansu) create it with the broker's default partition
count: a subscriber started before the daemon then leaves news.published with 4 partitions
where the pipeline needs 6.  The protocol has a flag against that (v4+), but aiokafka 0.14
always sets it and has no option for it, so this module reaches into aiokafka's client (its
module-level ``MetadataRequest`` and the client's ``_metadata_update``).
``tests/unit/test_kafka_internals.py`` fails when an aiokafka upgrade moves either.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

#: Whether a metadata request built in the current context may ask the broker to create the
#: topics it names (see ``refuse_auto_creation``).
_METADATA_AUTO_CREATE: ContextVar[bool] = ContextVar("ingestor_metadata_auto_create", default=True)


def _install_metadata_guard() -> bool:
    """Once per process, let aiokafka's metadata requests say "do not create these topics".

    aiokafka's client builds every metadata request through the module's ``MetadataRequest``;
    this swaps in a subclass that clears the flag when ``_METADATA_AUTO_CREATE`` is False in
    the calling context and changes nothing otherwise.  Returns False where aiokafka's request
    has no such field (then only the existence checks of the tools stand between them and
    auto-creation).
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
