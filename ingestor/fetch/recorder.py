"""Records an attempt, polled or pushed, the one way: decide, apply, count, save, log.

Poll and push used to record an attempt each in their own words, and drifted; both now
hand their result and verdict here.  The rules are in ``decision.decide`` (pure); this
module only applies the ``Decision`` to the feed, moves its due time, writes the state
record and emits the canonical ``feed_fetched`` line and the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from ingestor.fetch.decision import (
    NO_PUSH,
    Decision,
    FetchPolicy,
    PushLink,
    PushResult,
    Random,
    Result,
    Verdict,
    decide,
)
from ingestor.fetch.feedstate import FeedState
from ingestor.fetch.keeper import StateKeeper
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.packed import Validators
from ingestor.fetch.raw import RawSink
from ingestor.fetch.schedule import DueQueue
from ingestor.fetch.status import StageStats
from ingestor.models import format_utc
from ingestor.ops import metrics

log = structlog.get_logger("ingestor.fetch")


def apply(state: FeedState, decision: Decision) -> None:
    """Adopt what the decision says the feed now is (no await: no other attempt sees half of it)."""
    if decision.validators_changed:
        state.set_validators(decision.etag, decision.last_modified, decision.sha256)
    state.recent, state.timing = decision.recent, decision.timing
    state.history.append(decision.attempt)


#: Poll outcomes where nothing happened: at 5,000 fetches/s, most of them.  Without
#: ``fetch.log_every_fetch`` they get no line of their own, only a count in ``fetch_summary``.
QUIET_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.NOT_MODIFIED, Outcome.UNCHANGED})


def logged_on_its_own(outcome: Outcome, *, every_fetch: bool) -> bool:
    """Whether a poll with this outcome gets its own ``feed_fetched`` line."""
    return every_fetch or outcome not in QUIET_OUTCOMES


class Recorder:
    """The shared end of every attempt; ``stopping`` keeps a finishing fetch off the schedule."""

    def __init__(
        self,
        policy: FetchPolicy,
        rand: Random,
        queue: DueQueue,
        stats: StageStats,
        keeper: StateKeeper,
        raw: RawSink,
        stopping: Callable[[], bool],
        *,
        log_every_fetch: bool = True,
    ) -> None:
        self._log_every_fetch = log_every_fetch
        self._policy = policy
        self._rand = rand
        self._queue = queue
        self._stats = stats
        self._keeper = keeper
        self._raw = raw
        self._stopping = stopping

    async def commit(
        self,
        state: FeedState,
        result: Result,
        verdict: Verdict,
        link: PushLink = NO_PUSH,
        known: Validators | None = None,
        scheduled: float | None = None,
    ) -> Decision:
        """``known``: ``state.validators()``, when the caller has just unpacked them (no await
        since); ``scheduled``: the due time a poll was started for (see ``decide``)."""
        now = time.time()
        decision = decide(state, result, verdict, self._policy, now, self._rand, link, known, scheduled)
        apply(state, decision)
        if decision.reschedule:
            if state.paused:
                state.parked_due = decision.due
            elif not state.removed and not self._stopping():
                self._queue.schedule(state.feed.id, decision.due)
        self._stats.count(decision)
        await self._keeper.save(self._raw.producer, state, decision)  # after the history: it is in it
        record = decision.attempt
        if isinstance(result, PushResult):
            log.info(
                "feed_fetched",
                stage="fetch",
                feed=state.feed.id,
                status=200,
                duration_ms=record.duration_ms,
                url=state.feed.url,
                bytes=len(result.body),
                outcome=decision.outcome.value,
                reason=None,
                produced=decision.produced,
                via="push",
                failures=state.timing.failures,
                next_due=format_utc(record.next_due),
            )
            return decision
        outcome = decision.outcome
        metrics.observe_fetch(
            state.feed.id,
            outcome.value,
            success=outcome.success,
            duration_s=result.duration_ms / 1000,
            size=result.bytes_read,
            failures=state.timing.failures,
        )
        if not logged_on_its_own(outcome, every_fetch=self._log_every_fetch):
            return decision  # counted in the stage's periodic fetch_summary line
        (log.info if outcome.success else log.warning)(
            "feed_fetched",
            stage="fetch",
            feed=state.feed.id,
            status=result.status,
            duration_ms=record.duration_ms,
            url=state.feed.url,
            final_url=result.final_url if result.final_url != state.feed.url else None,
            bytes=result.bytes_read,
            outcome=outcome.value,
            reason=decision.reason,
            attempts=result.attempts,
            produced=decision.produced,
            failures=state.timing.failures,
            next_due=format_utc(record.next_due),
        )
        return decision
