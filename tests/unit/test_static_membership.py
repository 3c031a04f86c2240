"""Static group identities: stable across a restart, never shared by two live members on a host."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ingestor.config import ConfigError, KafkaConfig, load_settings
from ingestor.kafka import KafkaConnection, instance

NOWHERE = "127.0.0.1:9"  # never contacted: the clients are built, not started


def _config(tmp_path: Path, **values: object) -> KafkaConfig:
    return KafkaConfig.model_validate({"embedded": {"state_dir": str(tmp_path)}, **values})


def test_one_identity_per_live_member_and_the_same_one_after_a_release(tmp_path: Path) -> None:
    config = _config(tmp_path, instance_name="host-a")
    first = instance.claim(config, "ingestor-dedup", "dedup")
    second = instance.claim(config, "ingestor-dedup", "dedup")
    assert first is not None and second is not None
    assert (first.instance_id, second.instance_id) == ("host-a-dedup-0", "host-a-dedup-1")
    other_group = instance.claim(config, "ingestor-parse", "parse")
    assert other_group is not None and other_group.instance_id == "host-a-parse-0"

    first.release()  # what the kernel does for a SIGKILLed process
    assert not first.held
    again = instance.claim(config, "ingestor-dedup", "dedup")
    assert again is not None and again.instance_id == "host-a-dedup-0"
    for member in (second, other_group, again):
        member.release()


def test_the_host_name_by_default_in_the_characters_kafka_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "web 1:prod/x")
    member = instance.claim(_config(tmp_path), "g", "fetch")
    assert member is not None and member.instance_id == "web_1_prod_x-fetch-0"
    member.release()


def test_off_or_without_a_lock_the_member_is_dynamic_and_says_so(tmp_path: Path) -> None:
    assert instance.claim(_config(tmp_path, static_membership=False), "g", "dedup") is None
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the lock directory should be")
    instance._reported.clear()
    with capture_logs() as logs:
        assert instance.claim(_config(blocked), "g", "dedup") is None
        assert instance.claim(_config(blocked), "g", "dedup") is None
    warnings = [entry for entry in logs if entry["event"] == "static_membership_unavailable"]
    assert len(warnings) == 1 and warnings[0]["reason"] == "lock_failed"


def test_every_slot_held_falls_back_to_dynamic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance, "MAX_SLOTS", 2)
    config = _config(tmp_path, instance_name="h")
    held = [instance.claim(config, "g", "parse") for _ in range(2)]
    assert all(member is not None for member in held)
    assert instance.claim(config, "g", "parse") is None
    for member in held:
        assert member is not None
        member.release()


async def test_the_consumer_factory_joins_with_the_identity_the_session_and_the_wait(tmp_path: Path) -> None:
    config = _config(tmp_path, instance_name="h", session_timeout="8s", heartbeat_interval="1s")
    connection = KafkaConnection(NOWHERE, config)
    member = connection.group_member("g", "dedup")
    assert member is not None
    consumer = connection.consumer("t", group_id="g", member=member)
    dynamic = connection.consumer("t", group_id="g")
    try:
        assert consumer._group_instance_id == "h-dedup-0"
        assert dynamic._group_instance_id is None
        assert consumer._session_timeout_ms == 8000 and consumer._heartbeat_interval_ms == 1000
        # under 8 s the embedded broker's static holds make groups rebalance for ever: dynamic
        short = connection.consumer("t", group_id="g", member=member, session_timeout_ms=4000)
        assert short._group_instance_id is None
        await short.stop()
        # the embedded broker answers a fetch only when its wait is over: every consumer waits
        # kafka.max_wait; unset, 500 ms unless the daemon runs the embedded broker in memory
        assert consumer._fetch_max_wait_ms == dynamic._fetch_max_wait_ms == 50  # embedded, memory
        s3 = KafkaConfig.model_validate({"embedded": {"storage": "s3://bucket/"}})
        cluster = KafkaConfig(bootstrap_servers="kafka-1:9092")
        assert s3.fetch_wait == cluster.fetch_wait == 0.5
        assert _config(tmp_path, max_wait="20ms").fetch_wait == 0.02
    finally:
        await consumer.stop()
        await dynamic.stop()
        member.release()


def test_config_refuses_a_name_kafka_would_refuse_and_a_heartbeat_past_the_session() -> None:
    with pytest.raises(ConfigError, match="instance_name"):
        load_settings(None, overrides={"kafka": {"instance_name": "two words"}})
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        load_settings(None, overrides={"kafka": {"session_timeout": "3s", "heartbeat_interval": "3s"}})
