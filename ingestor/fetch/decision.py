"""What one fetch attempt, polled or pushed, means for its feed: the pure core of the fetch stage.

The stage used to work this out inline, twice (once for a poll, once for a WebSub push), with
the rules mixed into the awaits; a change to one path had to be remembered in the other, and
none of it could be tested without a broker.  Here the rules are functions of plain data:

* :func:`judge`, before any I/O: what the response is (new, unchanged, an earlier body again,
  a replayed push) and whether its body is to be produced;
* :func:`decide`, once the broker answered: the feed's new validators, body hash, replay
  window and backoff, when it is due next, the attempt line for its history, and the state
  record with whether it is worth writing.

No clock (``now`` is passed in), no randomness of its own (``rand`` is passed in, as in
``schedule``), no I/O, and the ``FeedState`` passed in is only read: the shell applies a
``Decision`` and does the produce, the save, the log and the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeAlias

from ingestor.config import FetchConfig
from ingestor.fetch.feedstate import HISTORY, AttemptRecord, FeedState, utc
from ingestor.fetch.hints import Hints
from ingestor.fetch.outcome import Outcome, settle
from ingestor.fetch.packed import Validators
from ingestor.fetch.schedule import FeedTiming, Policy, next_poll
from ingestor.fetch.state import SavedState, SubscriptionState, due_for_saving, material_of
from ingestor.fetch.websub_protocol import body_key, discover, remember, seen

if TYPE_CHECKING:  # only its shape: a pure module imports neither aiohttp nor aiokafka
    from ingestor.fetch.http import FetchResult

Random = Callable[[], float]  # uniform in [0, 1)
Via = Literal["poll", "push"]


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Everything configured that the decision needs, read once from the settings."""

    schedule: Policy
    websub: bool = False  # WebSub on: keep a replay window, poll pushed feeds only as a fallback
    replay_window: int = 0
    push_poll_interval: float = 0.0
    state_saving: bool = False  # a fetch-state topic is configured
    state_attempts: int = 0
    state_refresh: float = 0.0
    instance: str = ""

    @classmethod
    def from_config(cls, config: FetchConfig, instance: str) -> FetchPolicy:
        return cls(
            schedule=Policy.from_config(config),
            websub=bool(config.websub.callback_url),
            replay_window=config.websub.replay_window,
            push_poll_interval=config.websub.poll_interval,
            state_saving=bool(config.state_topic),
            state_attempts=config.state_attempts,
            state_refresh=config.state_refresh,
            instance=instance,
        )


@dataclass(frozen=True, slots=True)
class PushResult:
    """A hub's push of a feed's body, in the shape of a fetch result: a push is a fetch whose
    response we did not ask for.  ``next_poll`` is the feed's poll due time, which a push leaves
    where it is (the push is recorded with it); ``duration_ms`` is filled in once produced."""

    feed_id: str
    url: str
    body: bytes
    content_type: str | None
    sha256: str
    received_at: datetime
    duration_ms: float = 0.0
    next_poll: float | None = None


Result: TypeAlias = "FetchResult | PushResult"


@dataclass(frozen=True, slots=True)
class PushLink:
    """The feed's WebSub subscription as the shell sees it at decision time (none: WebSub off)."""

    subscribed: bool = False  # in any state: its polls race with pushes
    active: bool = False  # verified and live: the hub delivers, polling is only a fallback
    snapshot: SubscriptionState | None = None  # what the state record keeps of it


NO_PUSH = PushLink()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a response is before anything is written: ``produce`` says whether the body goes to
    news.raw; ``claim`` is the replay window with a pushed body already in it (taken before the
    produce, so that the same push arriving twice meanwhile is a duplicate); ``replayed`` means
    a push of an older body, refused without a trace in the schedule."""

    outcome: Outcome
    reason: str | None = None
    produce: bool = False
    produced: bool = False
    replayed: bool = False
    claim: tuple[str, ...] | None = None

    def acknowledged(self) -> Verdict:
        """The broker acknowledged the body."""
        return replace(self, produce=False, produced=True)

    def refused(self, reason: str) -> Verdict:
        """The broker did not acknowledge: the feed's fault it is not, validators stay as they were."""
        return replace(self, outcome=Outcome.PRODUCE_FAILED, reason=reason, produce=False, produced=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """The new state of a feed after one attempt, and what the shell is to do about it."""

    via: Via
    outcome: Outcome
    reason: str | None
    produced: bool
    etag: str | None
    last_modified: str | None
    sha256: str | None
    recent: tuple[str, ...]
    timing: FeedTiming
    due: float
    reschedule: bool  # a poll moves the feed's due time; a push leaves the poll schedule alone
    attempt: AttemptRecord
    record: SavedState | None = None  # the fetch-state record, when ``persist`` (built only then)
    persist: bool = False  # whether writing ``record`` is worth a message (see ``due_for_saving``)
    material: int | None = field(default=None, repr=False)  # ``state.material`` of ``record``
    validators_changed: bool = True  # etag, last_modified or sha256 differ from the feed's
    skipped: int = 0  # slots of the feed's cadence the next due time passes over (``next_poll``)

    @property
    def counter(self) -> str:
        """The key this attempt counts under in the stage's outcome counts."""
        return self.outcome.value if self.via == "poll" else f"push_{self.outcome.value}"


def judge(
    state: FeedState,
    result: Result,
    policy: FetchPolicy,
    link: PushLink = NO_PUSH,
    known: Validators | None = None,
) -> Verdict:
    """Whether the body is new, before any I/O.

    A 200 whose body hashes to the latest one is unchanged (servers that ignore conditional
    GET).  With WebSub, a body among the feed's recent ones but not the latest is old content:
    from a poll of a pushed feed it is a stale copy (a CDN node, a lagging origin) of what a
    push delivered; from a push it is a captured push sent again, or a hub resending.
    Producing either would make dedup publish the old text as a new version.

    ``known``: ``state.validators()``, when the caller has just unpacked them (no await since).
    """
    latest = (known or state.validators())[2]
    if isinstance(result, PushResult):
        sha = result.sha256
        outcome = settle(Outcome.OK, sha, latest)
        if outcome is Outcome.OK and state.recent and state.recent[-1] == body_key(sha):
            outcome = Outcome.UNCHANGED  # the same push at two callbacks (a renewal), still in flight
        if outcome is Outcome.OK and seen(state.recent, sha):
            return Verdict(outcome, replayed=True)
        if outcome is Outcome.OK:
            return Verdict(outcome, produce=True, claim=remember(state.recent, sha, policy.replay_window))
        return Verdict(outcome)
    outcome = settle(result.outcome, result.sha256, latest)
    reason = result.reason
    if (
        outcome is Outcome.OK
        and result.sha256 is not None
        and policy.websub
        and link.subscribed
        and seen(state.recent, result.sha256)
    ):
        outcome, reason = Outcome.UNCHANGED, "an earlier body again"
    return Verdict(outcome, reason, produce=outcome is Outcome.OK)


def subscription_target(result: FetchResult, verdict: Verdict, feed_url: str) -> tuple[str, str] | None:
    """The (hub, topic) a successful poll announces, to subscribe to; None if it names no hub."""
    if not verdict.outcome.success or (result.body is None and not result.links):
        return None
    found = discover(result.links, result.body, result.final_url)
    if found.hub is None:
        return None
    return found.hub, found.self_url or feed_url


def missed_by_hub(verdict: Verdict, link: PushLink) -> bool:
    """A poll found a new body while a push subscription was active: the hub missed it."""
    return link.active and verdict.produced and verdict.outcome.success


def decide(
    state: FeedState,
    result: Result,
    verdict: Verdict,
    policy: FetchPolicy,
    now: float,
    rand: Random,
    link: PushLink = NO_PUSH,
    known: Validators | None = None,
    scheduled: float | None = None,
) -> Decision:
    """The feed's state after this attempt, given what the broker made of the body.

    Poll and push take the same path; they differ only in what a response can say (a push
    carries no validators, hints or errors) and in that a push leaves the poll schedule alone.
    Validators and the body hash move only with a body the broker acknowledged (or the very
    body already recorded): a broker outage costs a re-fetch, never a lost body.

    ``known``: ``state.validators()``, when the caller has just unpacked them (no await since).
    ``scheduled``: the due time a poll was started for; the next one keeps the feed's cadence
    from it (``schedule.next_poll``).
    """
    timing = state.timing.copy()
    before = known or state.validators()
    etag, last_modified, sha256 = before
    recent = state.recent
    outcome, produced = verdict.outcome, verdict.produced
    if isinstance(result, PushResult):
        if produced:
            sha256 = result.sha256  # the replay window already holds it: claimed before the produce
        timing.observe(outcome, now)
        due = result.next_poll or now
        skipped = 0
        attempt = AttemptRecord(
            at=result.received_at,
            outcome=outcome,
            status=200,
            duration_ms=round(result.duration_ms, 1),
            bytes=len(result.body),
            reason=None,
            produced=produced,
            next_due=utc(due),
            via="push",
        )
        via: Via = "push"
    else:
        if produced or (outcome is Outcome.UNCHANGED and result.sha256 == sha256):
            etag, last_modified, sha256 = result.etag, result.last_modified, result.sha256
            if policy.websub and result.sha256 is not None:  # a push of it is a replay
                recent = remember(recent, result.sha256, policy.replay_window)
        elif outcome is Outcome.NOT_MODIFIED:
            etag = result.etag or etag
            last_modified = result.last_modified or last_modified
        # else an earlier body again (the latest stays the latest), or a failure: nothing learnt
        timing.observe(outcome, now)
        hints = result.hints if outcome is not Outcome.ERROR else Hints()
        late = now - scheduled if scheduled is not None else 0.0
        delay, skipped = next_poll(policy.schedule, timing, outcome, hints, now, rand, late)
        if policy.websub and outcome.success and link.active:  # pushed: polling is the fallback
            delay = max(delay, policy.push_poll_interval)
        due = now + delay
        attempt = AttemptRecord(
            at=result.fetched_at,
            outcome=outcome,
            status=result.status,
            duration_ms=round(result.duration_ms, 1),
            bytes=result.bytes_read,
            reason=verdict.reason,
            produced=produced,
            next_due=utc(due),
        )
        via = "poll"
    record: SavedState | None = None
    current: int | None = None
    persist = False
    if policy.state_saving:
        websub = link.snapshot
        current = material_of(
            state.feed.url, etag, last_modified, sha256, timing.failures, timing.change_interval,
            timing.last_change_at, policy.instance, websub, recent,
        )  # fmt: skip
        persist = due_for_saving(state.saved_material, current, state.saved_at, now, policy.state_refresh)
        # built only when written: most polls move nothing but the due time (a third of the
        # fetch stage's CPU per 304 went into records nobody wrote)
        if persist:
            keep = policy.state_attempts
            # the record carries this attempt too; only the attempts it keeps are unpacked
            attempts = (*state.history.saved_last(min(keep, HISTORY) - 1), attempt.saved()) if keep else ()
            record = SavedState(
                url=state.feed.url,
                etag=etag,
                last_modified=last_modified,
                sha256=sha256,
                failures=timing.failures,
                change_interval=timing.change_interval,
                last_change_at=timing.last_change_at,
                next_due=due,
                saved_at=now,
                instance=policy.instance,
                attempts=attempts,
                websub=websub,
                recent=recent,
            )
    return Decision(
        via=via,
        outcome=outcome,
        reason=verdict.reason if via == "poll" else None,
        produced=produced,
        etag=etag,
        last_modified=last_modified,
        sha256=sha256,
        recent=recent,
        timing=timing,
        due=due,
        reschedule=via == "poll",
        attempt=attempt,
        record=record,
        persist=persist,
        material=current,
        validators_changed=(etag, last_modified, sha256) != before,
        skipped=skipped,
    )
