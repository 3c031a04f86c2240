"""A rebalance listener that speaks partition numbers: what the fetch stage's group members
(the feed registry, the article fetcher) need, each over one topic whose partition number is
also the number of its state partition."""

from __future__ import annotations

from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener


class PartitionOwner(Protocol):
    """What owns a topic's partitions by number, and is told when it gains or loses them."""

    async def revoked(self, partitions: set[int]) -> None: ...
    async def assigned(self, partitions: set[int]) -> None: ...


class PartitionListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands a single-topic consumer's rebalances to its owner as sets of partition numbers."""

    def __init__(self, owner: PartitionOwner) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner.assigned({tp.partition for tp in assigned})
