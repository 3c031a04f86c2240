"""Ask the group coordinator, right before a batch, whether this member still owns its partitions.

Kafka fences a member that lost its partitions with transactions (the producer epoch). Not
every Kafka-protocol broker has them: Tansu 0.6 answers a transactional InitProducerId with
an error. Without fencing, a member learns that its partitions moved only at its next
heartbeat, up to ``heartbeat_interval`` later, and meanwhile keeps consuming from its fetch
buffer. That happens after a session expired while the process was starved of CPU, and after
a broker restart that forgot the group. A stage whose output must not be written twice (dedup)
would publish next to the partitions' new owner in that window.

A heartbeat of its own right before the batch closes the window. The coordinator answers with
an error as soon as the generation moved on or a rebalance started. A rebalance cannot hand the
partitions to someone else before this member rejoins, and it rejoins only after the batch is
acked and committed: the revoke hook waits for it. The session cannot expire either; it has
just been renewed.

This reaches into aiokafka's group coordinator (``_coordinator``, ``_send_req``), which has no
public API for it. aiokafka is pinned below 0.15 in pyproject.toml for that reason;
``tests/unit/test_kafka_internals.py`` fails when an upgrade moves those attributes, and
``tests/integration/test_membership.py`` checks the behaviour against the embedded broker.
"""

from __future__ import annotations

import enum
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    for_code,
)
from aiokafka.protocol.group import HeartbeatRequest

#: aiokafka's "not a member yet" sentinel
UNKNOWN_MEMBER_ID = ""


class Membership(enum.Enum):
    """What the coordinator said about this member's generation."""

    CURRENT = "current"  # the assignment in hand is still this member's
    REBALANCING = "rebalancing"  # a rebalance started: rejoin before consuming more
    FENCED = "fenced"  # unknown member or stale generation: the partitions may be someone else's
    UNREACHABLE = "unreachable"  # no answer: nothing can be published either

    @property
    def owns_partitions(self) -> bool:
        return self is Membership.CURRENT


async def confirm_membership(consumer: AIOKafkaConsumer) -> Membership:
    """One Heartbeat round trip; on a bad answer also tells aiokafka to rejoin at once."""
    coordinator: Any = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "generation"):
        return Membership.CURRENT  # no group (manual assignment): nothing to confirm
    if coordinator.member_id == UNKNOWN_MEMBER_ID:
        return Membership.FENCED
    request = HeartbeatRequest(coordinator.group_id, coordinator.generation, coordinator.member_id)
    try:
        response = await coordinator._send_req(request)
    except KafkaError:
        return Membership.UNREACHABLE
    error = for_code(response.error_code)
    if response.error_code == 0:
        return Membership.CURRENT
    if error is RebalanceInProgressError:
        coordinator.request_rejoin()
        return Membership.REBALANCING
    if error in (UnknownMemberIdError, IllegalGenerationError):
        coordinator.reset_generation()
        return Membership.FENCED
    return Membership.UNREACHABLE
