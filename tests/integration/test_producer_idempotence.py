"""Idempotent producers where the broker has them; a clear fallback where it does not (Tansu 0.6)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaError
from structlog.testing import capture_logs

from ingestor import kafka
from ingestor.kafka import KafkaConnection
from tests.conftest import make_settings


async def test_auto_falls_back_once_and_says_so(broker_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "_IDEMPOTENCE_REFUSED", {})
    connection = KafkaConnection(broker_address, make_settings(broker_address).kafka)
    with capture_logs() as logs:
        first = await connection.start_producer()
        second = await connection.start_producer()
    try:
        for producer in (first, second):
            assert not producer._txn_manager  # a plain producer: the embedded broker refused
            await producer.send_and_wait("idempotence-probe", b"x")
    finally:
        await first.stop()
        await second.stop()
    refusals = [entry for entry in logs if entry["event"] == "producer_idempotence_unavailable"]
    assert len(refusals) == 1  # asked once per process, not per producer
    assert refusals[0]["bootstrap_servers"] == broker_address


async def test_required_idempotence_fails_loudly(
    broker_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka, "_IDEMPOTENCE_REFUSED", {})
    settings = make_settings(
        broker_address, kafka={"bootstrap_servers": broker_address, "idempotent_producer": True}
    )
    connection = KafkaConnection(broker_address, settings.kafka)
    with pytest.raises(KafkaError):
        await connection.start_producer()
