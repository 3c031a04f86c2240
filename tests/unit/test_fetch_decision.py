"""The fetch stage's pure core: what a polled or pushed response means for its feed.

No broker, no sockets, no clock: ``judge`` and ``decide`` get plain data and return plain data.
"""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.config import FeedConfig
from ingestor.fetch.decision import (
    NO_PUSH,
    Decision,
    FetchPolicy,
    PushLink,
    PushResult,
    Verdict,
    decide,
    judge,
    missed_by_hub,
    subscription_target,
)
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.feedstate import FeedState
from ingestor.fetch.hints import Hints
from ingestor.fetch.http import FetchResult
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import Policy
from ingestor.fetch.state import SubscriptionState, adopted, material
from ingestor.fetch.websub_protocol import body_key, remember

NOW = 1_700_000_000.0
AT = datetime.fromtimestamp(NOW, UTC)
URL = "https://news.example/feed.xml"
SCHEDULE = Policy(default_interval=60.0, floor=1.0, max_interval=3600.0, max_backoff=600.0, jitter=0.0)
POLICY = FetchPolicy(SCHEDULE, state_saving=True, state_attempts=3, state_refresh=300.0, instance="me:1")
PUSHED = replace(POLICY, websub=True, replay_window=4, push_poll_interval=900.0)


def half() -> float:
    """The middle of the jitter range: no jitter at all, whatever the fraction."""
    return 0.5


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def feed_state(**fields: object) -> FeedState:
    feed = FeedSpec.of(FeedConfig(id="f", url=URL, interval=60))
    state = FeedState(feed=feed, timing=SCHEDULE.timing_for(feed))
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def fetched(
    outcome: Outcome = Outcome.OK,
    body: bytes | None = b"<rss>v1</rss>",
    *,
    etag: str | None = '"v1"',
    last_modified: str | None = None,
    hints: Hints | None = None,
    status: int | None = 200,
    links: str | None = None,
    reason: str | None = None,
) -> FetchResult:
    return FetchResult(
        "f",
        URL,
        URL,
        outcome,
        reason,
        status,
        AT,
        12.34,
        body=body if outcome is Outcome.OK else None,
        bytes_read=len(body or b""),
        etag=etag,
        last_modified=last_modified,
        sha256=sha(body) if body is not None and outcome is Outcome.OK else None,
        hints=hints or Hints(),
        links=links,
    )


def pushed(body: bytes, next_poll: float | None = None) -> PushResult:
    return PushResult("f", URL, body, "application/rss+xml", sha(body), AT, 5.0, next_poll)


def poll(
    state: FeedState,
    result: FetchResult,
    *,
    policy: FetchPolicy = POLICY,
    broker_ok: bool = True,
    link: PushLink = NO_PUSH,
    now: float = NOW,
) -> Decision:
    """What the shell does for a poll, without the I/O: judge, (pretend to) produce, decide."""
    verdict = judge(state, result, policy, link)
    if verdict.produce:
        verdict = verdict.acknowledged() if broker_ok else verdict.refused("produce failed: broker down")
    return decide(state, result, verdict, policy, now, half, link)


def adopt(state: FeedState, decision: Decision) -> FeedState:
    """Apply a decision the way the shell's recorder does."""
    state.etag, state.last_modified, state.sha256 = decision.etag, decision.last_modified, decision.sha256
    state.recent, state.timing = decision.recent, decision.timing
    state.history.append(decision.attempt)
    if decision.persist:
        state.saved_material, state.saved_at = decision.material, NOW
    return state


# --- validators ---------------------------------------------------------------------------


def test_a_new_body_is_produced_and_only_then_moves_the_validators() -> None:
    state = feed_state(etag='"v0"', sha256=sha(b"old"))
    result = fetched(last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    verdict = judge(state, result, POLICY)
    assert verdict.produce and verdict.outcome is Outcome.OK
    decision = decide(state, result, verdict.acknowledged(), POLICY, NOW, half)
    assert (decision.etag, decision.last_modified, decision.sha256) == (
        '"v1"',
        "Mon, 01 Jan 2024 00:00:00 GMT",
        sha(b"<rss>v1</rss>"),
    )
    assert decision.produced and decision.outcome is Outcome.OK
    assert decision.due == NOW + 60.0 and decision.reschedule
    assert decision.attempt.produced and decision.attempt.duration_ms == 12.3
    assert decision.counter == "ok"


def test_a_body_the_broker_did_not_acknowledge_leaves_the_validators_alone() -> None:
    state = feed_state(etag='"v0"', sha256=sha(b"old"))
    decision = poll(state, fetched(), broker_ok=False)
    assert decision.outcome is Outcome.PRODUCE_FAILED and not decision.produced
    assert (decision.etag, decision.sha256) == ('"v0"', sha(b"old"))  # re-fetched, never lost
    assert decision.timing.failures == 0  # the broker's fault, not the feed's: no backoff
    assert decision.due == NOW + 60.0
    assert decision.reason == "produce failed: broker down"


def test_304_keeps_what_the_server_did_not_resend() -> None:
    state = feed_state(etag='"v1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT", sha256=sha(b"x"))
    kept = poll(state, fetched(Outcome.NOT_MODIFIED, None, etag=None, status=304))
    assert (kept.etag, kept.last_modified, kept.sha256) == (
        '"v1"',
        "Mon, 01 Jan 2024 00:00:00 GMT",
        sha(b"x"),
    )
    changed = poll(state, fetched(Outcome.NOT_MODIFIED, None, etag='"v2"', status=304))
    assert changed.etag == '"v2"' and changed.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert not changed.produced and changed.outcome is Outcome.NOT_MODIFIED


def test_the_same_body_again_is_unchanged_and_adopts_the_new_validators() -> None:
    body = b"<rss>same</rss>"
    state = feed_state(etag='"old-etag"', sha256=sha(body))
    verdict = judge(state, fetched(body=body, etag='"new-etag"'), POLICY)
    assert verdict.outcome is Outcome.UNCHANGED and not verdict.produce
    decision = poll(state, fetched(body=body, etag='"new-etag"'))
    assert decision.etag == '"new-etag"' and decision.sha256 == sha(body)
    assert not decision.produced


# --- errors, backoff, hints ---------------------------------------------------------------


def test_failures_back_off_exponentially_up_to_the_cap_and_a_success_resets() -> None:
    state = feed_state(etag='"v1"', sha256=sha(b"x"))
    delays = []
    for _ in range(7):
        decision = poll(state, fetched(Outcome.HTTP_5XX, None, status=500, reason="server error 500"))
        assert decision.etag == '"v1"' and decision.reason == "server error 500"
        delays.append(decision.due - NOW)
        adopt(state, decision)
    assert delays == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0]  # never dropped, capped
    assert state.timing.failures == 7
    recovered = poll(state, fetched(Outcome.NOT_MODIFIED, None, status=304))
    assert recovered.timing.failures == 0 and recovered.due == NOW + 60.0


def test_retry_after_is_a_floor_and_cache_hints_widen() -> None:
    state = feed_state()
    limited = poll(state, fetched(Outcome.HTTP_429, None, status=429, hints=Hints(retry_after=120.0)))
    assert limited.due - NOW == 120.0
    cached = poll(state, fetched(hints=Hints(max_age=300.0)))
    assert cached.due - NOW == 300.0
    capped = poll(state, fetched(hints=Hints(ttl=99_999.0)))
    assert capped.due - NOW == SCHEDULE.max_interval


def test_an_unexpected_error_ignores_whatever_hints_it_carries() -> None:
    state = feed_state()
    result = replace(fetched(Outcome.ERROR, None, status=None), hints=Hints(max_age=3000.0))
    decision = decide(state, result, Verdict(Outcome.ERROR, "KeyError: 'x'"), POLICY, NOW, half)
    assert decision.due - NOW == 60.0 and decision.timing.failures == 1
    assert decision.reason == "KeyError: 'x'"


# --- persisting -----------------------------------------------------------------------------


def test_whether_to_persist_material_changes_at_once_the_rest_at_the_refresh() -> None:
    state = feed_state()
    first = poll(state, fetched())
    assert first.persist and first.record is not None  # this instance's first save
    assert first.record.instance == "me:1" and first.record.next_due == first.due
    assert [a.outcome for a in first.record.attempts] == ["ok"]
    adopt(state, first)
    quiet = poll(state, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 60)
    assert not quiet.persist  # only the due time moved
    later = poll(state, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 300)
    assert later.persist  # refreshed every state_refresh
    failing = poll(state, fetched(Outcome.TIMEOUT, None, status=None), now=NOW + 60)
    assert failing.persist  # the backoff is material: a restart must not hammer a dead host


def test_a_feed_resumed_from_its_record_is_not_written_again_until_something_moves() -> None:
    state = feed_state()
    first = poll(state, fetched(), now=NOW)
    assert first.record is not None
    record = replace(first.record, instance="previous-owner:7")  # what the topic holds
    resumed = feed_state(etag=record.etag, sha256=record.sha256)
    record.apply_to(resumed.timing)
    resumed.saved_material, resumed.saved_at = adopted(record, POLICY.instance)
    assert not poll(resumed, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 60).persist
    assert poll(resumed, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 300).persist  # refresh
    assert poll(resumed, fetched(Outcome.TIMEOUT, None, status=None), now=NOW + 60).persist  # material
    fresh = feed_state(etag=record.etag, sha256=record.sha256)  # no record to resume from
    record.apply_to(fresh.timing)
    assert poll(fresh, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 60).persist


def test_the_record_is_built_only_when_it_is_written() -> None:
    state = feed_state()
    adopt(state, poll(state, fetched()))
    quiet = poll(state, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + 60)
    assert not quiet.persist and quiet.record is None and quiet.material is not None


def test_the_record_keeps_only_the_configured_number_of_attempts() -> None:
    state = feed_state()
    for i in range(5):
        adopt(state, poll(state, fetched(Outcome.NOT_MODIFIED, None, status=304), now=NOW + i))
    decision = poll(state, fetched(), now=NOW + 10)
    assert decision.record is not None and len(decision.record.attempts) == 3
    assert decision.record.attempts[-1].outcome == "ok"


def test_no_state_topic_no_record() -> None:
    decision = poll(feed_state(), fetched(), policy=replace(POLICY, state_saving=False))
    assert decision.record is None and not decision.persist


# --- push and poll: one path ----------------------------------------------------------------


def test_a_push_and_a_poll_of_the_same_new_body_come_to_the_same_state() -> None:
    body = b"<rss>v2</rss>"
    by_poll = poll(feed_state(sha256=sha(b"v1")), fetched(body=body, etag=None), policy=PUSHED)
    state = feed_state(sha256=sha(b"v1"))
    verdict = judge(state, pushed(body), PUSHED)
    assert verdict.produce and verdict.claim == (body_key(sha(body)),)
    state.recent = verdict.claim  # the shell claims it before the produce
    by_push = decide(state, pushed(body, next_poll=NOW + 42), verdict.acknowledged(), PUSHED, NOW, half)
    assert by_push.sha256 == by_poll.sha256 and by_push.recent == by_poll.recent
    assert by_push.timing == by_poll.timing
    assert by_push.produced and by_poll.produced
    assert by_push.counter == "push_ok" and by_poll.counter == "ok"
    assert not by_push.reschedule and by_push.due == NOW + 42  # a push leaves the poll schedule alone
    assert by_push.attempt.via == "push" and by_push.attempt.status == 200


def test_a_push_of_the_latest_body_is_unchanged() -> None:
    body = b"<rss>v2</rss>"
    state = feed_state(sha256=sha(body), recent=(body_key(sha(body)),))
    verdict = judge(state, pushed(body), PUSHED)
    assert verdict.outcome is Outcome.UNCHANGED and not verdict.produce and not verdict.replayed
    decision = decide(state, pushed(body), verdict, PUSHED, NOW, half)
    assert decision.due == NOW and decision.counter == "push_unchanged"  # no poll due: recorded now
    in_flight = feed_state(sha256=sha(b"v1"), recent=(body_key(sha(body)),))  # claimed, not yet acked
    assert judge(in_flight, pushed(body), PUSHED).outcome is Outcome.UNCHANGED


def test_a_push_of_an_earlier_body_is_a_replay_and_a_poll_of_one_is_stale() -> None:
    old, new = b"<rss>v1</rss>", b"<rss>v2</rss>"
    recent = remember(remember((), sha(old), 4), sha(new), 4)
    state = feed_state(sha256=sha(new), recent=recent)
    replay = judge(state, pushed(old), PUSHED)
    assert replay.replayed and not replay.produce
    subscribed = PushLink(subscribed=True)
    stale = poll(state, fetched(body=old), policy=PUSHED, link=subscribed)
    assert stale.outcome is Outcome.UNCHANGED and stale.reason == "an earlier body again"
    assert stale.sha256 == sha(new) and stale.recent == recent  # the latest stays the latest
    unsubscribed = poll(state, fetched(body=old), policy=PUSHED)  # no push race: it is news
    assert unsubscribed.produced and unsubscribed.recent[-1] == body_key(sha(old))


def test_the_replay_window_keeps_the_last_bodies_only() -> None:
    state = feed_state()
    for i in range(6):
        adopt(state, poll(state, fetched(body=f"<rss>{i}</rss>".encode()), policy=PUSHED))
    assert state.recent == tuple(body_key(sha(f"<rss>{i}</rss>".encode())) for i in range(2, 6))
    no_websub = poll(feed_state(), fetched())
    assert no_websub.recent == ()  # without WebSub nothing is kept


def test_a_pushed_feed_is_polled_only_as_a_slow_fallback() -> None:
    state = feed_state()
    active = PushLink(subscribed=True, active=True)
    assert poll(state, fetched(), policy=PUSHED, link=active).due - NOW == 900.0
    assert poll(state, fetched(), policy=PUSHED, link=PushLink(subscribed=True)).due - NOW == 60.0
    failing = poll(state, fetched(Outcome.HTTP_5XX, None, status=500), policy=PUSHED, link=active)
    assert failing.due - NOW == 60.0  # a failure backs off as usual


def test_the_subscription_is_in_the_record() -> None:
    sub = SubscriptionState("https://hub.example/", URL, NOW + 3600, pushes=2)
    decision = poll(feed_state(), fetched(), policy=PUSHED, link=PushLink(True, True, sub))
    assert decision.record is not None and decision.record.websub == sub
    assert decision.material == material(decision.record)


def test_hub_discovery_and_missed_changes() -> None:
    link = '<https://hub.example/>; rel="hub", <https://news.example/self>; rel="self"'
    result = fetched(links=link)
    ok = Verdict(Outcome.OK, produced=True)
    assert subscription_target(result, ok, URL) == ("https://hub.example/", "https://news.example/self")
    assert subscription_target(result, Verdict(Outcome.PRODUCE_FAILED), URL) is None
    assert subscription_target(fetched(), ok, URL) is None
    assert missed_by_hub(ok, PushLink(active=True))
    assert not missed_by_hub(ok, PushLink(subscribed=True))
    assert not missed_by_hub(Verdict(Outcome.UNCHANGED), PushLink(active=True))


# --- purity -----------------------------------------------------------------------------------


def test_the_core_imports_no_network_client() -> None:
    """The pure modules are testable (and importable) without aiohttp or aiokafka."""
    code = (
        "import sys, ingestor.fetch.decision, ingestor.fetch.dispatcher\n"
        "print(sorted(m for m in ('aiohttp', 'aiokafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_OUTCOMES = st.sampled_from(list(Outcome))


@settings(max_examples=200, deadline=None)
@given(
    outcome=_OUTCOMES,
    same_body=st.booleans(),
    broker_ok=st.booleans(),
    failures=st.integers(0, 70),
    retry_after=st.none() | st.floats(0, 10_000),
    max_age=st.none() | st.floats(0, 100_000),
    websub=st.booleans(),
    active=st.booleans(),
    rand=st.floats(0, 0.999),
)
def test_decide_is_pure_bounded_and_never_sooner_than_the_floor(
    outcome: Outcome,
    same_body: bool,
    broker_ok: bool,
    failures: int,
    retry_after: float | None,
    max_age: float | None,
    websub: bool,
    active: bool,
    rand: float,
) -> None:
    body = b"<rss>b</rss>"
    state = feed_state(etag='"e"', sha256=sha(body) if same_body else None)
    state.timing.failures = failures
    before = copy.deepcopy(state)
    policy = replace(PUSHED, schedule=replace(SCHEDULE, jitter=0.2)) if websub else POLICY
    link = PushLink(subscribed=active, active=active)
    result = replace(fetched(outcome, body), hints=Hints(max_age=max_age, retry_after=retry_after))
    verdict = judge(state, result, policy, link)
    if verdict.produce:
        verdict = verdict.acknowledged() if broker_ok else verdict.refused("produce failed")
    one = decide(state, result, verdict, policy, NOW, lambda: rand, link)
    two = decide(state, result, verdict, policy, NOW, lambda: rand, link)
    assert one == two  # a function of its inputs
    assert repr(state) == repr(before)  # and it wrote nothing back
    delay = one.due - NOW
    assert SCHEDULE.floor <= delay <= SCHEDULE.max_interval * 1.2  # widened at most, then jittered
    assert one.produced == (verdict.outcome is Outcome.OK and verdict.produced)
    if not one.produced and one.outcome is not Outcome.UNCHANGED:
        assert one.sha256 == state.sha256  # only an acknowledged (or the same) body moves the hash


@pytest.mark.parametrize("outcome", [o for o in Outcome if not o.success and o is not Outcome.PRODUCE_FAILED])
def test_every_failure_counts_towards_backoff(outcome: Outcome) -> None:
    result = fetched(outcome, None, status=None)
    decision = decide(feed_state(), result, Verdict(outcome), POLICY, NOW, half)
    assert decision.timing.failures == 1 and not decision.produced


@pytest.mark.parametrize(
    ("outcome", "body", "etag"),
    [
        (Outcome.OK, b"<rss>v2</rss>", '"v2"'),  # a new body: validators move
        (Outcome.OK, b"<rss>v1</rss>", '"v1"'),  # the same body again: nothing moves
        (Outcome.NOT_MODIFIED, None, '"v1"'),
        (Outcome.NOT_MODIFIED, None, '"v1b"'),  # a 304 with a new ETag: it moves
        (Outcome.HTTP_5XX, None, None),
    ],
)
def test_validators_the_caller_unpacked_give_the_same_decision(
    outcome: Outcome, body: bytes | None, etag: str | None
) -> None:
    """The stage passes ``known`` (validators unpacked once per poll); the decision must not
    depend on it, and ``validators_changed`` must say exactly whether the feed's move."""
    state = adopt(feed_state(), poll(feed_state(), fetched()))
    result = fetched(outcome, body, etag=etag, status=None if body is None else 200)
    verdict = judge(state, result, POLICY, NO_PUSH, state.validators())
    assert verdict == judge(state, result, POLICY)
    if verdict.produce:
        verdict = verdict.acknowledged()
    plain = decide(state, result, verdict, POLICY, NOW, half)
    shared = decide(state, result, verdict, POLICY, NOW, half, NO_PUSH, state.validators())
    assert shared == plain
    moved = (plain.etag, plain.last_modified, plain.sha256) != state.validators()
    assert plain.validators_changed is moved
