"""The packed attempt history (issue 15) reads back exactly what was appended, bounded like the
deque it replaced."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from ingestor.config import FeedConfig
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.feedstate import HISTORY, AttemptRecord, FeedState, History
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import FeedTiming


def _attempt(rand: random.Random) -> AttemptRecord:
    now = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    return AttemptRecord(
        at=now - timedelta(seconds=rand.random() * 1e6, microseconds=rand.randint(0, 999_999)),
        outcome=rand.choice(list(Outcome)),
        status=rand.choice([None, 200, 304, 500, 999]),
        duration_ms=round(rand.random() * 10_000, 1),
        bytes=rand.randint(0, 2**40),
        reason=rand.choice([None, None, "HTTP 500", "produce failed: KafkaTimeoutError: x"]),
        produced=rand.random() < 0.5,
        next_due=now.astimezone(timezone(timedelta(hours=2)))
        + timedelta(microseconds=rand.randint(0, 10**12)),
        via=rand.choice(["poll", "push", "poll", "from-a-newer-version"]),
    )


def test_reads_back_the_last_attempts_equal_and_in_order() -> None:
    rand = random.Random(15)
    for _ in range(300):
        history, appended = History(), []
        for _ in range(rand.randint(0, 3 * HISTORY)):
            attempt = _attempt(rand)
            history.append(attempt)
            appended.append(attempt)
        kept = appended[-HISTORY:]
        assert list(history) == kept
        assert len(history) == len(kept)
        assert [a.saved() for a in history] == [a.saved() for a in kept]  # the state record's view
        assert all(a.at.tzinfo is UTC and a.next_due.tzinfo is UTC for a in history)
        n = rand.randint(0, HISTORY + 2)
        assert history.last(n) == (kept[-n:] if n else [])


def test_texts_are_dropped_with_the_attempts_that_had_them() -> None:
    rand = random.Random(1)
    history = History()
    failed = AttemptRecord(**{**_attempt_fields(rand), "reason": "HTTP 500", "via": "poll"})
    history.append(failed)
    quiet = AttemptRecord(**{**_attempt_fields(rand), "reason": None, "via": "push"})
    history.extend([quiet] * HISTORY)
    assert list(history) == [quiet] * HISTORY
    assert history._texts == ()  # no side tuple left once no attempt has a text


def _attempt_fields(rand: random.Random) -> dict[str, object]:
    attempt = _attempt(rand)
    return {name: getattr(attempt, name) for name in AttemptRecord.__dataclass_fields__}


def test_feed_state_starts_with_an_empty_history() -> None:
    state = FeedState(FeedSpec.of(FeedConfig(id="a", url="http://a.test/")), FeedTiming(60.0, 15.0))
    assert state.host == "a.test"
    assert list(state.history) == [] and len(state.history) == 0


def test_saved_last_is_the_saved_form_of_the_last_attempts() -> None:
    """The state record's attempts come straight from the packed history: the same as saving each
    ``AttemptRecord``, for every kind of attempt (reasons, vias, no status, pre-epoch times)."""
    rand = random.Random(3)
    history = History()
    for _ in range(25):
        at = datetime.fromtimestamp(rand.uniform(-1e6, 2e9), UTC) + timedelta(
            microseconds=rand.randrange(10**6)
        )
        history.append(
            AttemptRecord(
                at, rand.choice(list(Outcome)), rand.choice([None, 200, 304, 500]), rand.random() * 100,
                rand.randrange(10**6), rand.choice([None, "read timeout"]), rand.random() < 0.5,
                at + timedelta(seconds=rand.random() * 300, microseconds=rand.randrange(10**6)),
                rand.choice(["poll", "push", "article"]),
            )
        )  # fmt: skip
        for n in range(12):
            assert history.saved_last(n) == [attempt.saved() for attempt in history.last(n)]


def _polled(rand: random.Random, reason: str | None = None, via: str | None = None) -> AttemptRecord:
    """An attempt as ``decide`` records one: duration in tenths of a millisecond, an HTTP status."""
    at = datetime(2025, 3, 30, tzinfo=UTC) + timedelta(seconds=rand.random() * 1e6)
    return AttemptRecord(
        at, rand.choice(list(Outcome)), rand.choice([None, 200, 304, 404, 500]),
        round(rand.random() * 3e4, 1), rand.randrange(2**31), reason, rand.random() < 0.5,
        at + timedelta(seconds=rand.uniform(-10, 6 * 3600 * 4)), via or rand.choice(["poll", "push"]),
    )  # fmt: skip


def test_the_stage_s_attempts_take_22_bytes_each() -> None:
    """What the stage records fits the narrow layout: ten attempts are one 221-byte object."""
    rand = random.Random(22)
    history = History()
    kept = [_polled(rand) for _ in range(3 * HISTORY)]
    history.extend(kept)
    assert list(history) == kept[-HISTORY:]
    assert len(history._packed) == 1 + 22 * HISTORY


def test_one_attempt_that_does_not_fit_widens_the_history_until_it_is_gone() -> None:
    rand = random.Random(42)
    history = History([_polled(rand) for _ in range(4)])
    odd = AttemptRecord(**{**_attempt_fields(rand), "duration_ms": 1 / 3, "status": 200})  # not in tenths
    history.append(odd)
    more = [_polled(rand) for _ in range(HISTORY - 1)]
    history.extend(more)
    assert history._packed[0] == 1 and list(history) == [odd, *more]  # all wide while it is there
    history.append(last := _polled(rand))
    assert history._packed[0] == 0 and list(history) == [*more, last]  # narrow again
    for value in (-0.0, float("inf"), 2.0**27, 1e-7):  # each read back as it was, sign of zero too
        history.append(AttemptRecord(**{**_attempt_fields(rand), "duration_ms": value}))
        assert str(history.last(1)[0].duration_ms) == str(value)


def test_a_failure_repeated_keeps_one_text() -> None:
    rand = random.Random(7)
    history = History()
    for _ in range(HISTORY):  # each reason a string of its own, as each response makes one
        history.append(_polled(rand, reason="".join(["HTTP 500: ", "Server Error"]), via="poll"))
    texts = history._texts
    assert len(texts) == HISTORY and all(t is texts[0] for t in texts)
    for n in range(HISTORY):  # another via: the reason's string is still shared
        history.append(_polled(rand, reason="".join(["read ", "timeout"]), via=("article", "poll")[n % 2]))
    reasons = [t[0] for t in history._texts if t is not None]
    assert len(reasons) == HISTORY and all(r is reasons[0] for r in reasons)
    assert [a.reason for a in history] == ["read timeout"] * HISTORY
