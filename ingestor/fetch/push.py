"""WebSub as the fetch stage sees it: a push is one more attempt, recorded like a poll.

``websub`` speaks to hubs (subscribe, verify, authenticate pushes); this adapter is the
stage's side of it, kept apart so that the fetch path does not carry WebSub inline: it
turns a push into a ``PushResult`` that goes through the same ``judge``/``decide`` as a
poll, subscribes where a poll names a hub, and tells the decision whether a feed is pushed
(its polls are then only a slow fallback, and an older body from them is stale).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from ingestor.config import FetchConfig
from ingestor.fetch.decision import (
    FetchPolicy,
    PushLink,
    PushResult,
    Verdict,
    judge,
    missed_by_hub,
    subscription_target,
)
from ingestor.fetch.feedstate import FeedState
from ingestor.fetch.http import FetchResult
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.raw import RawSink
from ingestor.fetch.recorder import Recorder
from ingestor.fetch.schedule import DueQueue
from ingestor.fetch.state import SubscriptionState
from ingestor.fetch.status import StageStats
from ingestor.fetch.websub import HubStats, PushVerdict, WebSubscriber

log = structlog.get_logger("ingestor.fetch")


def as_fetched(push: PushResult) -> FetchResult:
    """What the raw producer writes, so that a pushed body looks like a polled 200."""
    return FetchResult(
        push.feed_id,
        push.url,
        push.url,
        Outcome.OK,
        None,
        200,
        push.received_at,
        0.0,
        body=push.body,
        bytes_read=len(push.body),
        content_type=push.content_type,
        sha256=push.sha256,
    )


class PushAdapter:
    """Owns the stage's ``WebSubscriber`` and answers its pushes."""

    def __init__(
        self,
        config: FetchConfig,
        policy: FetchPolicy,
        states: Mapping[str, FeedState],
        queue: DueQueue,
        raw: RawSink,
        stats: StageStats,
        recorder: Recorder,
    ) -> None:
        self._policy = policy
        self._states = states
        self._queue = queue
        self._raw = raw
        self._stats = stats
        self._recorder = recorder
        self.subscriber = WebSubscriber(config, self.on_push)
        self._restored: dict[str, SubscriptionState] = {}  # resubscribed once WebSub runs

    # --- lifecycle ---------------------------------------------------------------------

    def keep_for_start(self, feed_id: str, saved: SubscriptionState) -> None:
        """A subscription read from the state topic before WebSub runs: renewed at ``start``."""
        self._restored[feed_id] = saved

    async def start(self) -> None:
        await self.subscriber.start()
        restored, self._restored = self._restored, {}
        for feed_id, sub in restored.items():
            if feed_id in self._states:
                self.subscriber.ensure(feed_id, sub.hub, sub.topic, restored=sub)

    async def stop(self) -> None:
        await self.subscriber.stop()

    # --- the feed set -----------------------------------------------------------------

    def adopt(self, feed_id: str, saved: SubscriptionState) -> None:
        """A handed-over feed: subscribe with our own callback, keeping the counts."""
        self.subscriber.ensure(feed_id, saved.hub, saved.topic, restored=saved)

    def forget(self, feed_id: str) -> None:
        self.subscriber.forget(feed_id)

    def window(self, recent: tuple[str, ...]) -> tuple[str, ...]:
        """A restored replay window, cut to the configured length."""
        return recent[-self._policy.replay_window :]

    # --- polls ------------------------------------------------------------------------

    def before_poll(self, feed_id: str) -> PushLink:
        """What ``judge`` needs to tell a stale copy of a pushed body from a new one."""
        return PushLink(subscribed=self.subscriber.subscribed(feed_id))

    def after_poll(self, state: FeedState, result: FetchResult, verdict: Verdict) -> PushLink:
        """Subscribe where the poll names a hub; count a change the hub missed; then the link
        as ``decide`` and the state record see it."""
        feed_id = state.feed.id
        if verdict.outcome.success:
            target = subscription_target(result, verdict, state.feed.url)
            if target is not None and not state.removed:
                self.subscriber.ensure(feed_id, *target)
            active = self.subscriber.active(feed_id)
            if missed_by_hub(verdict, PushLink(active=active)):
                self.subscriber.note_poll_change(feed_id)
        return self.link(feed_id)

    def link(self, feed_id: str) -> PushLink:
        return PushLink(
            subscribed=self.subscriber.subscribed(feed_id),
            active=self.subscriber.active(feed_id),
            snapshot=self.subscriber.snapshot(feed_id),
        )

    # --- pushes -----------------------------------------------------------------------

    async def on_push(self, feed_id: str, body: bytes, content_type: str | None) -> PushVerdict:
        """A hub's push, treated as a fetch result: produced once (body hash), state and log as a poll."""
        state = self._states.get(feed_id)
        if state is None or state.removed or self._raw.producer is None:
            return "unknown"
        if state.paused:  # a rebalance is deciding who owns it: the hub retries, the owner takes it
            return "failed"
        started = time.perf_counter()
        result = PushResult(
            feed_id,
            state.feed.url,
            body,
            content_type,
            hashlib.sha256(body).hexdigest(),
            datetime.now(UTC),
        )
        verdict = judge(state, result, self._policy)
        if verdict.replayed:
            self._stats.outcomes["push_replayed"] += 1
            log.warning("websub_push_replayed", stage="fetch", feed=feed_id, sha256=result.sha256)
            return "replayed"
        if verdict.produce:
            before = state.recent  # claimed before the await: a concurrent push of it is a duplicate
            state.recent = verdict.claim if verdict.claim is not None else before
            try:
                await self._raw.produce(state.feed, as_fetched(result), via="push")
            except Exception as exc:  # the hub retries a push it did not get a 2xx for
                state.recent = before
                error = f"produce failed: {type(exc).__name__}: {exc}"
                self._stats.last_produce_error = error
                log.warning("feed_push_not_produced", stage="fetch", feed=feed_id, error=error)
                return "failed"
            verdict = verdict.acknowledged()
        pushed = replace(
            result,
            duration_ms=(time.perf_counter() - started) * 1000,
            next_poll=self._queue.due_at(feed_id) or state.parked_due,
        )
        decision = await self._recorder.commit(state, pushed, verdict, self.link(feed_id))
        return "new" if decision.produced else "unchanged"

    # --- status -----------------------------------------------------------------------

    def status_of(self, feed_id: str) -> dict[str, object] | None:
        return self.subscriber.status_of(feed_id)

    def hubs(self) -> dict[str, HubStats]:
        return self.subscriber.hubs()
