"""When an instance counts as ready: the rules behind /readyz, as a pure function of a snapshot.

"Ready" means *this process is doing its share of the pipeline right now*.  For a consuming
stage that is: its loop runs, its Kafka session is up, its group join has completed (and, for
dedup, the state restore that runs inside the join has finished), and it keeps polling.  A
member that joined but was given no partitions is ready too: Kafka's assignors hand out every
partition, so an empty assignment after a completed join means the group has more members
than partitions, and this instance is a warm standby that takes over on the next rebalance.
Failing it would make a deliberately over-provisioned deployment look broken.  While a
rebalance is in progress (revoked, not yet re-assigned) the stage is not ready.

A stage is *stalled* when its loop has not come back to poll for ``stall_after`` seconds (a
batch stuck on a produce that is never acknowledged, a handler that hangs), or when it has lag
and has finished no batch for ``progress_after`` seconds.  The fetch stage is stalled when its
most overdue feed is ``fetch_overdue_after`` seconds late (its schedule loop is not keeping
up).  The broker counts as reachable while the last metadata request succeeded and is no older
than ``broker_stale_after`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ConsumerSnapshot:
    stage: str
    running: bool
    connected: bool
    assigned: int
    assigned_at: float | None
    last_poll_at: float | None
    last_batch_at: float | None
    lag: int
    broker_ok: bool = True  # the loop's own view: its last round trip to the broker succeeded
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    running: bool
    ready: bool
    overdue_seconds: float


@dataclass(frozen=True, slots=True)
class Thresholds:
    stall_after: float = 120.0
    progress_after: float = 300.0
    broker_stale_after: float = 20.0
    fetch_overdue_after: float = 600.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    expected_stages: tuple[str, ...]
    started_stages: tuple[str, ...]
    broker_ok_at: float | None = None
    broker_error: str | None = None
    consumers: tuple[ConsumerSnapshot, ...] = ()
    fetch: FetchSnapshot | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    reasons: list[str] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ready", "standby" or why not

    def to_json(self) -> dict[str, object]:
        return {"ready": self.ready, "reasons": self.reasons, "stages": self.stages}


def _consumer_problem(c: ConsumerSnapshot, now: float, limits: Thresholds) -> str | None:
    if not c.running:
        return "consume loop not running"
    if not c.connected:
        return "not connected to the broker (client being rebuilt)"
    if not c.broker_ok:
        return f"broker unreachable ({c.last_error or 'no recent round trip'})"
    if c.assigned_at is None:
        return "waiting for partition assignment (joining, rebalancing or restoring state)"
    if c.last_poll_at is not None and now - c.last_poll_at > limits.stall_after:
        return f"stalled: no poll for {now - c.last_poll_at:.0f}s"
    if c.lag > 0:
        since = max(c.last_batch_at or 0.0, c.assigned_at)
        if now - since > limits.progress_after:
            return f"stalled: lag {c.lag} and no batch finished for {now - since:.0f}s"
    return None


def _fetch_problem(f: FetchSnapshot, limits: Thresholds) -> str | None:
    if not f.running or not f.ready:
        return "schedule loop or producer not running"
    if f.overdue_seconds > limits.fetch_overdue_after:
        return f"stalled: the most overdue feed is {f.overdue_seconds:.0f}s late"
    return None


def decide(snapshot: Snapshot, limits: Thresholds | None = None) -> Verdict:
    """Ready only when every rule holds; otherwise every reason, so one look says what to fix."""
    limits = limits or Thresholds()
    now = snapshot.now
    reasons: list[str] = []
    stages: dict[str, str] = {}
    missing = [name for name in snapshot.expected_stages if name not in snapshot.started_stages]
    for name in missing:
        stages[name] = "not started"
        reasons.append(f"{name}: not started")
    if snapshot.broker_ok_at is None or now - snapshot.broker_ok_at > limits.broker_stale_after:
        why = snapshot.broker_error or "no successful metadata request yet"
        reasons.append(f"broker unreachable: {why}")
    for consumer in snapshot.consumers:
        problem = _consumer_problem(consumer, now, limits)
        if problem is None:
            stages[consumer.stage] = "ready" if consumer.assigned else "standby"
        else:
            stages[consumer.stage] = problem
            reasons.append(f"{consumer.stage}: {problem}")
    if snapshot.fetch is not None:
        problem = _fetch_problem(snapshot.fetch, limits)
        stages["fetch"] = problem or "ready"
        if problem is not None:
            reasons.append(f"fetch: {problem}")
    return Verdict(ready=not reasons, reasons=reasons, stages=stages)
