"""Idempotent producers where the broker has them; a clear fallback where it does not (embedded)."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import KafkaError
from structlog.testing import capture_logs

from ingestor.kafka import KafkaConnection, capabilities
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test asks the broker afresh, as the first producer of a process does."""
    monkeypatch.setattr(capabilities, "_IDEMPOTENCE_ANSWERS", {})
    monkeypatch.setattr(capabilities, "_REPORTED", set())


async def test_auto_falls_back_once_and_says_so(broker_address: str) -> None:
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


async def test_required_idempotence_fails_loudly(broker_address: str) -> None:
    settings = make_settings(
        broker_address, kafka={"bootstrap_servers": broker_address, "idempotent_producer": True}
    )
    connection = KafkaConnection(broker_address, settings.kafka)
    with pytest.raises(KafkaError):
        await connection.start_producer()


@pytest.mark.parametrize("mode", ["auto", True])
async def test_probing_idempotence_makes_no_client_log_an_error(
    broker_address: str, mode: str | bool, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka logs "Unexpected error during InitProducerIdRequest" at ERROR when an idempotent
    producer is refused; the probe must not be where a newcomer first sees an error."""
    settings = make_settings(
        broker_address, kafka={"bootstrap_servers": broker_address, "idempotent_producer": mode}
    )
    connection = KafkaConnection(broker_address, settings.kafka)
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    with capture_logs() as own:  # the pipeline's own events do not go through logging's handlers
        if mode is True:
            with pytest.raises(KafkaError):
                await connection.start_producer()
        else:
            producer = await connection.start_producer()
            await producer.stop()
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    errors += [entry["event"] for entry in own if entry["log_level"] in ("error", "critical")]
    assert errors == []


async def test_an_idempotent_start_on_the_embedded_broker_would_log_that_error(
    broker_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The control for the test above: aiokafka's own idempotent start does log the ERROR
    there, so its absence above is the probe's doing, not a log that was never captured."""
    connection = KafkaConnection(broker_address, make_settings(broker_address).kafka)
    producer = connection.producer(enable_idempotence=True)
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    try:
        with pytest.raises(KafkaError):
            await producer.start()
    finally:
        await producer.stop()
    assert any(
        r.levelno >= logging.ERROR and "InitProducerIdRequest" in r.getMessage() for r in caplog.records
    )
