"""Consumer groups seen from outside (for ``ingestor status``): their state and committed offsets.

Both work around gaps of Tansu 0.6: a DescribeGroups request naming several groups gets a
garbled response, so groups are described one per request; and the admin client's
OffsetFetch is not understood, so committed offsets come from a group consumer's OffsetFetch
(a consumer that never subscribes, so it never joins the group).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

if TYPE_CHECKING:
    from ingestor.kafka.connection import KafkaConnection


async def describe_groups(connection: KafkaConnection, groups: list[str]) -> tuple[dict[str, Any], list[str]]:
    """State and member count per group, plus every other group id the cluster knows."""
    described: dict[str, Any] = {}
    others: list[str] = []
    admin = connection.admin()
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # an old broker without ListGroups: only ours
            others = sorted({str(g[0]) for g in await admin.list_consumer_groups()} - set(groups))
        for wanted in groups:  # one per request (see the module docstring)
            with contextlib.suppress(Exception):
                for response in await admin.describe_consumer_groups([wanted]):
                    for group in response.groups:
                        error_code, group_id, state, _ptype, _protocol, members = group[:6]
                        described[str(group_id)] = {
                            "state": str(state) if not error_code else f"error {error_code}",
                            "members": len(members),
                        }
    finally:
        await admin.close()
    return described, others


async def committed_offsets(
    connection: KafkaConnection, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset per partition (None where it has none)."""
    consumer = connection.consumer(group_id=group)  # never subscribes, so it never joins the group
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
