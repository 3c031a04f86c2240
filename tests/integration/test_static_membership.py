"""Static group membership against the real broker: a SIGKILLed member's successor gets its
partitions back without waiting for the dead session, and two live members never share one.

Measured on the embedded broker (Tansu 0.6, 10 s session): a dynamic member restarted after a
SIGKILL is assigned about 18 s after the kill (the coordinator first waits out the dead session,
then holds the join for half a session); a static one about 8 s after (half a session for the
join, 3 s for the sync), with the dead member's id and generation: no rebalance at all.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from ingestor.config import Settings
from ingestor.consumer_loop import ConsumeLoop, Output
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.ops import metrics
from tests.conftest import make_settings
from tests.integration.kafka_helpers import produce

pytestmark = pytest.mark.subprocess

#: SIGKILL to assignment of the successor: ~8 s static, ~18 s dynamic (see the module docstring)
REJOIN_LIMIT_S = 13.0
#: a settled static group must not rebalance again within this (the loop was one every 8 s)
STILL_S = 20.0

# A single-writer consume loop in its own process, so that it can be SIGKILLed.
MEMBER = r"""
import asyncio, sys
from ingestor.config import load_settings
from ingestor.consumer_loop import ConsumeLoop
from ingestor.kafka import KafkaConnection

async def main(bootstrap, topic, group, state_dir):
    settings = load_settings(None, overrides={"kafka": {
        "bootstrap_servers": bootstrap, "embedded": {"state_dir": state_dir}}})
    async def handler(record):
        return []
    loop = ConsumeLoop(stage="static-test", connection=KafkaConnection(bootstrap, settings.kafka),
                       topics=[topic], group_id=group, handler=handler, dlq_topic=topic + ".dlq",
                       single_writer=True)
    await loop.start()
    while not loop.stats.assigned:
        await asyncio.sleep(0.05)
    print("ASSIGNED", loop.group_instance_id, sorted(tp.partition for tp in loop.stats.assigned), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


def _rebalances() -> float:
    return (
        metrics.REGISTRY.get_sample_value("ingestor_consumer_rebalances_total", {"stage": "static-test"})
        or 0.0
    )


def _settings(broker_address: str, state_dir: Path) -> Settings:
    return make_settings(broker_address, kafka={"embedded": {"state_dir": str(state_dir)}})


def _loop(settings: Settings, group: str, seen: list[bytes]) -> ConsumeLoop:
    async def handler(record: ConsumerRecord[bytes, bytes]) -> list[Output]:
        seen.append(record.value)
        return []

    return ConsumeLoop(
        stage="static-test",
        connection=KafkaConnection(settings.kafka.bootstrap_servers, settings.kafka),
        topics=[settings.topics.items],
        group_id=group,
        handler=handler,
        dlq_topic=settings.topics.dlq,
        single_writer=True,
    )


def _assigned_line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    for line in child.stdout:  # its log lines come first
        if line.startswith("ASSIGNED"):
            return line
    raise AssertionError(f"the member exited with {child.wait()} before it was assigned")


async def _assigned(loop: ConsumeLoop, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while len(loop.stats.assigned) != count:
            await asyncio.sleep(0.05)


async def test_a_restarted_member_gets_its_partitions_back_at_once(
    broker_address: str, tmp_path: Path
) -> None:
    settings = _settings(broker_address, tmp_path)
    await ensure_topics(KafkaConnection(broker_address, settings.kafka), settings.topics)
    group = f"g{uuid.uuid4().hex[:8]}-static"
    child = subprocess.Popen(
        [sys.executable, "-c", MEMBER, broker_address, settings.topics.items, group, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(_assigned_line, child), 60)
        _, dead_instance, partitions = line.split(maxsplit=2)
        assert partitions.strip() == "[0, 1, 2]"
    finally:
        child.kill()
        child.wait(10)
    killed_at = time.monotonic()

    seen: list[bytes] = []
    successor = _loop(settings, group, seen)
    await successor.start()
    try:
        assert successor.group_instance_id == dead_instance  # the slot the kernel freed
        await _assigned(successor, 3, 40)
        rejoined_s = time.monotonic() - killed_at
        # The single writer's membership check passes at once: records are processed, not withheld.
        await produce(broker_address, settings.topics.items, [(b"k", b"after the restart", [])])
        async with asyncio.timeout(20):
            while not seen:
                await asyncio.sleep(0.05)
    finally:
        await successor.stop()
    assert rejoined_s < REJOIN_LIMIT_S, f"assigned {rejoined_s:.1f} s after the kill"
    assert seen == [b"after the restart"]


async def test_two_live_members_on_one_host_never_share_an_identity(
    broker_address: str, tmp_path: Path
) -> None:
    """The embedded broker does not fence a second member with the same instance id: both would
    own every partition. Each live member therefore takes its own slot, and the group splits.

    And it stays split: the embedded broker holds a static member's join and sync for 3 s each,
    and with short sessions it can drop members in the middle of that: two static fetch
    processes with 6 s sessions rebalanced every 8 s for ever. The default must keep it still."""
    settings = _settings(broker_address, tmp_path)
    await ensure_topics(KafkaConnection(broker_address, settings.kafka), settings.topics)
    group = f"g{uuid.uuid4().hex[:8]}-pair"
    first, second = _loop(settings, group, []), _loop(settings, group, [])
    await first.start()
    await second.start()
    try:
        assert first.group_instance_id is not None and second.group_instance_id is not None
        assert first.group_instance_id != second.group_instance_id

        async def split() -> None:
            while not (
                first.stats.assigned
                and second.stats.assigned
                and len(first.stats.assigned | second.stats.assigned) == 3
                and not first.stats.assigned & second.stats.assigned
            ):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(split(), 60)
        joins = _rebalances()
        await asyncio.sleep(STILL_S)
        assert _rebalances() == joins, "the static group kept rebalancing"
    finally:
        await asyncio.gather(first.stop(), second.stop())
