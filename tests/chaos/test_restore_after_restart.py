"""The dedup state restore after a broker restart on S3 storage reads the whole partition.

The embedded broker (0.6) on S3, stopped while produce requests were in flight, reports a partition's end far
short of its data after the restart (hundreds of records), until the next write. A restore that
trusted that end would miss the tail and dedup would publish those items again: the chaos suite
caught exactly that. This reproduces the lag for real and checks the restore reads past it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.dedup.restore import restore_partitions
from ingestor.config import KafkaConfig
from ingestor.kafka import KafkaConnection
from tests.chaos.procs import Broker, Moto
from tests.integration.daemon_process import write_config
from tests.integration.kafka_helpers import create_topic, read_topic

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

TOPIC = "restore.published"
PARTITIONS = 3

# A publisher in its own process, so that it can die with requests in flight.
PUBLISHER = r"""
import asyncio, sys
from aiokafka import AIOKafkaProducer
async def main():
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1], linger_ms=5, acks="all")
    await producer.start()
    n = 0
    while True:
        sends = []
        for _ in range(30):
            headers = [("item-version", b"1"), ("content-hash", b"h%d" % n), ("items-offset", b"%d" % n)]
            key = b"item-%d" % n
            sends.append(await producer.send(sys.argv[2], b"{}", key=key, partition=n % 3, headers=headers))
            n += 1
        await asyncio.gather(*sends, return_exceptions=True)
asyncio.run(main())
"""


async def _reported_ends(bootstrap: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    await asyncio.sleep(0)
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def test_restore_reads_past_a_lagging_end_after_a_restart(tmp_path: Path) -> None:
    moto = Moto(tmp_path, "restore")
    broker = Broker(
        tmp_path, write_config(tmp_path / "b.yaml", {"kafka": {"bootstrap_servers": "embedded"}}), moto
    )
    try:
        broker.start()

        asyncio.run(create_topic(broker.address, TOPIC, PARTITIONS))
        lag = 0
        for _ in range(3):  # the lag needs requests in flight at the stop: usually the first try
            publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, broker.address, TOPIC])
            time.sleep(3.0)
            publisher.kill()
            publisher.wait(10)
            broker.stop()
            broker.start()
            ends = asyncio.run(_reported_ends(broker.address))
            records = asyncio.run(read_topic(broker.address, TOPIC, settle=2.0, limit_s=60))
            last = {p: max(r.offset for r in records if r.partition == p) for p in range(PARTITIONS)}
            lag = max(last[p] + 1 - ends[p] for p in range(PARTITIONS))
            if lag > 30:  # more than one batch: not just the embedded broker's base-offset-of-last-batch end
                break
        assert lag > 30, f"the broker's end did not lag (by {lag}): this run proves nothing"

        connection = KafkaConnection(broker.address, KafkaConfig(bootstrap_servers=broker.address))
        states = asyncio.run(restore_partitions(connection, TOPIC, list(range(PARTITIONS))))
        expected = {p: {r.key.decode() for r in records if r.partition == p} for p in range(PARTITIONS)}
        for partition in range(PARTITIONS):
            missed = expected[partition] - set(states[partition].seen)
            assert not missed, (
                f"partition {partition}: restore missed {len(missed)} of {len(expected[partition])} ids"
                f" (reported end lagged by up to {lag})"
            )
    finally:
        broker.kill()
        moto.kill()
