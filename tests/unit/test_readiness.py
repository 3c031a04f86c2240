"""The /readyz rules as a pure function: what counts as ready, standby, rebalancing, stalled."""

from __future__ import annotations

import dataclasses

from ingestor.ops.readiness import ConsumerSnapshot, FetchSnapshot, Snapshot, Thresholds, decide

NOW = 1_000_000.0
LIMITS = Thresholds(stall_after=60, progress_after=120, broker_stale_after=20, fetch_overdue_after=300)


def consumer(stage: str = "parse", **changes: object) -> ConsumerSnapshot:
    base = ConsumerSnapshot(
        stage=stage,
        running=True,
        connected=True,
        assigned=3,
        assigned_at=NOW - 30,
        last_poll_at=NOW - 0.2,
        last_batch_at=NOW - 5,
        lag=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def snapshot(*consumers: ConsumerSnapshot, **changes: object) -> Snapshot:
    base = Snapshot(
        now=NOW,
        expected_stages=("dedup", "parse", "fetch"),
        started_stages=("dedup", "parse", "fetch"),
        broker_ok_at=NOW - 2,
        consumers=consumers or (consumer("parse"), consumer("dedup")),
        fetch=FetchSnapshot(running=True, ready=True, overdue_seconds=0.0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_everything_running_is_ready() -> None:
    verdict = decide(snapshot(), LIMITS)
    assert verdict.ready and verdict.reasons == []
    assert verdict.stages == {"parse": "ready", "dedup": "ready", "fetch": "ready"}


def test_a_joined_member_without_partitions_is_a_ready_standby() -> None:
    verdict = decide(snapshot(consumer("parse", assigned=0), consumer("dedup")), LIMITS)
    assert verdict.ready and verdict.stages["parse"] == "standby"


def test_rebalancing_or_restoring_is_not_ready() -> None:
    verdict = decide(snapshot(consumer("dedup", assigned=0, assigned_at=None)), LIMITS)
    assert not verdict.ready
    assert verdict.reasons == [
        "dedup: waiting for partition assignment (joining, rebalancing or restoring state)"
    ]


def test_starting_daemon_names_the_missing_stages() -> None:
    verdict = decide(snapshot(started_stages=("dedup",), fetch=None), LIMITS)
    assert not verdict.ready
    assert "parse: not started" in verdict.reasons and "fetch: not started" in verdict.reasons


def test_broker_never_reached_or_stale() -> None:
    never = decide(snapshot(broker_ok_at=None, broker_error="KafkaConnectionError: refused"), LIMITS)
    assert never.reasons == ["broker unreachable: KafkaConnectionError: refused"]
    stale = decide(snapshot(broker_ok_at=NOW - 21), LIMITS)
    assert not stale.ready and stale.reasons[0].startswith("broker unreachable")


def test_a_loop_that_stopped_polling_is_stalled() -> None:
    verdict = decide(snapshot(consumer("parse", last_poll_at=NOW - 61)), LIMITS)
    assert verdict.reasons == ["parse: stalled: no poll for 61s"]


def test_lag_without_progress_is_stalled_but_lag_with_progress_is_not() -> None:
    stuck = consumer("dedup", lag=40, last_batch_at=NOW - 200, assigned_at=NOW - 500)
    assert decide(snapshot(stuck), LIMITS).reasons == [
        "dedup: stalled: lag 40 and no batch finished for 200s"
    ]
    busy = consumer("dedup", lag=40, last_batch_at=NOW - 1)
    assert decide(snapshot(busy), LIMITS).ready
    # Just assigned with a backlog: the clock starts at the assignment, not at the last batch.
    fresh = consumer("dedup", lag=40, last_batch_at=None, assigned_at=NOW - 10)
    assert decide(snapshot(fresh), LIMITS).ready


def test_a_stage_that_lost_the_broker_says_so() -> None:
    lost = consumer("parse", broker_ok=False, last_error="KafkaConnectionError: closed")
    assert decide(snapshot(lost), LIMITS).reasons == [
        "parse: broker unreachable (KafkaConnectionError: closed)"
    ]


def test_dead_or_disconnected_consumer() -> None:
    assert decide(snapshot(consumer(running=False)), LIMITS).reasons == ["parse: consume loop not running"]
    assert not decide(snapshot(consumer(connected=False)), LIMITS).ready


def test_fetch_not_running_or_far_behind() -> None:
    off = decide(snapshot(fetch=FetchSnapshot(running=False, ready=False, overdue_seconds=0)), LIMITS)
    assert off.reasons == ["fetch: schedule loop or producer not running"]
    behind = decide(snapshot(fetch=FetchSnapshot(running=True, ready=True, overdue_seconds=301)), LIMITS)
    assert behind.reasons == ["fetch: stalled: the most overdue feed is 301s late"]


def test_verdict_json_carries_every_reason() -> None:
    body = decide(snapshot(consumer(running=False), broker_ok_at=None), LIMITS).to_json()
    assert body["ready"] is False and len(body["reasons"]) == 2  # type: ignore[arg-type]
