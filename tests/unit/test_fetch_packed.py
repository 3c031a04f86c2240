"""A feed's validators packed into one object (issue 15) read back exactly as set, and a
``FeedState`` reads and writes them (and its history) as the attributes they replaced."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ingestor.fetch import packed
from ingestor.fetch.feedspec import FeedSpec
from ingestor.fetch.feedstate import AttemptRecord, FeedState, History
from ingestor.fetch.outcome import Outcome
from ingestor.fetch.schedule import FeedTiming

SHA = hashlib.sha256(b"body").hexdigest()
texts = st.none() | st.text(max_size=300)  # any str: lone surrogates, NULs, 255+ bytes of UTF-8
hashes = texts | st.just(SHA) | st.just(SHA.upper()) | st.just(SHA[:-1]) | st.just("")


@given(texts, texts, hashes)
def test_validators_read_back_as_packed(
    etag: str | None, last_modified: str | None, sha256: str | None
) -> None:
    blob = packed.pack(etag, last_modified, sha256)
    assert packed.unpack(blob) == (etag, last_modified, sha256)
    assert (blob is None) == (etag is None and last_modified is None and sha256 is None)


def test_a_hashlib_digest_is_kept_as_its_32_bytes() -> None:
    etag, last_modified = '"5e4f-1a2b"', "Wed, 21 Oct 2015 07:28:00 GMT"
    blob = packed.pack(etag, last_modified, SHA)
    assert blob is not None and len(blob) == 1 + 32 + 1 + len(etag) + 1 + len(last_modified)
    long = "W/" + "x" * 300
    assert packed.unpack(packed.pack(long, None, None)) == (long, None, None)


def _state() -> FeedState:
    return FeedState(FeedSpec("f", "https://a.example/rss"), FeedTiming(60.0, 15.0))


def test_feed_state_validators_read_and_write_like_attributes() -> None:
    state = _state()
    assert (state.etag, state.last_modified, state.sha256) == (None, None, None)
    state.etag = '"v1"'
    state.sha256 = SHA
    state.last_modified = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert state.validators() == ('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT", SHA)
    state.etag = None
    assert (state.etag, state.last_modified, state.sha256) == (None, "Mon, 01 Jan 2024 00:00:00 GMT", SHA)
    state.set_validators('"v2"', None, "not-a-hash")
    assert state.validators() == ('"v2"', None, "not-a-hash")
    made = FeedState(state.feed, state.timing, etag='"e"', last_modified="lm", sha256=SHA)
    assert made.validators() == ('"e"', "lm", SHA)


def _attempt(n: int, reason: str | None = None) -> AttemptRecord:
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=300 * n, microseconds=n)
    return AttemptRecord(
        at, Outcome.NOT_MODIFIED, 304, 12.5, 0, reason, False, at + timedelta(seconds=300, microseconds=7)
    )


def test_feed_state_history_is_kept_in_the_state() -> None:
    state = _state()
    state.history.append(_attempt(1))
    state.history.extend([_attempt(2), _attempt(3)])
    assert list(state.history) == [_attempt(1), _attempt(2), _attempt(3)] and len(state.history) == 3
    other = _state()
    other.history = state.history  # what a changed definition of the same URL keeps
    state.history.append(_attempt(4))
    assert len(other.history) == 3 and len(state.history) == 4
    given_history = History([_attempt(5)])
    assert list(FeedState(state.feed, state.timing, history=given_history).history) == [_attempt(5)]


def test_validators_history_and_the_last_save_share_one_record_without_disturbing_each_other() -> None:
    state = _state()
    assert (state.saved_material, state.saved_at) == (None, 0.0)
    state.history.extend([_attempt(1), _attempt(2)])
    state.set_validators('"v1"', None, SHA)
    state.mark_saved(2**60 - 1, 1_700_000_000.123456)
    state.history.append(_attempt(3))
    state.etag = '"v2"'
    assert (state.saved_material, state.saved_at) == (2**60 - 1, 1_700_000_000.123456)
    assert state.validators() == ('"v2"', None, SHA)
    assert list(state.history) == [_attempt(1), _attempt(2), _attempt(3)]
    state.saved_material = None  # a failed write: saved again with the next fetch
    state.saved_at = 5.0
    state.set_validators(None, None, None)
    assert (state.saved_material, state.saved_at, state.validators()) == (None, 5.0, packed.NONE)
    assert len(state.history) == 3
    made = FeedState(state.feed, state.timing, saved_material=0, saved_at=1.5)
    assert (made.saved_material, made.saved_at, len(made.history)) == (0, 1.5, 0)


def test_what_most_feeds_never_have_takes_no_object_until_set_and_none_once_unset() -> None:
    state = _state()
    assert state._rare is None
    assert (state.recent, state.parked_due, state.paused, state.removed) == ((), None, False, False)
    state.paused, state.parked_due = True, 12.5
    state.recent = ("abc",)
    state.history.append(_attempt(1, reason="HTTP 500"))
    assert (state.recent, state.parked_due, state.paused, state.removed) == (("abc",), 12.5, True, False)
    assert state.history.last(1)[0].reason == "HTTP 500"
    state.paused, state.parked_due, state.recent = False, None, ()
    state.history.extend(_attempt(n) for n in range(2, 12))  # the attempt with a reason is gone
    assert state._rare is None and len(state.history) == 10
    state.removed = True
    assert state.removed and state._rare is not None
    made = FeedState(state.feed, state.timing, paused=True, recent=("x",), parked_due=1.0, removed=True)
    assert (made.recent, made.parked_due, made.paused, made.removed) == (("x",), 1.0, True, True)
