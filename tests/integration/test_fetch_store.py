"""Reading a state topic whole on the real broker: a feed's state in two partitions (it followed
its feed to its new host's partition; the old record waits for compaction) reads as the newest,
whatever order the partitions were read in, and a tombstone counts in its own partition only."""

from __future__ import annotations

import uuid

import pytest

from ingestor.config import KafkaConfig
from ingestor.fetch.state import SavedState, encode
from ingestor.fetch.store import ensure_state_topic, load_states, read_latest, saved_at
from ingestor.kafka import KafkaConnection

pytestmark = pytest.mark.integration


def state(url: str, at: float) -> bytes:
    return encode(SavedState(url, f'"{at}"', None, None, 0, None, None, at + 60, at))


async def test_a_state_in_two_partitions_reads_as_the_one_saved_last(broker_address: str) -> None:
    connection = KafkaConnection(broker_address, KafkaConfig())
    topic = f"state-{uuid.uuid4().hex[:8]}"
    await ensure_state_topic(connection, topic, partitions=2, replication=1)
    producer = await connection.start_producer()
    try:
        writes = [
            # "moved": saved at its new place (partition 0), its old record (1) written after it
            (0, "moved", state("https://new.example/feed", 200.0)),
            (1, "moved", state("https://old.example/feed", 100.0)),
            # "gone-here": tombstoned where it was (1), its newer record lives on in 0
            (0, "gone-here", state("https://new.example/g", 300.0)),
            (1, "gone-here", state("https://old.example/g", 250.0)),
            (1, "gone-here", None),
            # "removed": tombstoned in its only partition
            (1, "removed", state("https://x.example/r", 50.0)),
            (1, "removed", None),
        ]
        for partition, key, value in writes:
            await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
    finally:
        await producer.stop()
    states = await load_states(connection, topic, timeout=10.0)
    assert {key: s.url for key, s in states.items()} == {
        "moved": "https://new.example/feed",
        "gone-here": "https://new.example/g",
    }
    raw = await read_latest(connection, topic, timeout=10.0, newest=saved_at)
    assert sorted(raw) == ["gone-here", "moved"] and raw["moved"] == state("https://new.example/feed", 200.0)
    # one partition alone: its own latest, as the fetch stage reads its assignment
    mine = await read_latest(connection, topic, timeout=10.0, partitions=[1])
    assert mine == {"moved": state("https://old.example/feed", 100.0)}
