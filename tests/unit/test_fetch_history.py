"""The packed attempt history (issue 15) reads back exactly what was appended, bounded like the
deque it replaced."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from ingestor.config import FeedConfig
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
    state = FeedState(FeedConfig(id="a", url="http://a.test/"), FeedTiming(60.0, 15.0), "a.test")
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
