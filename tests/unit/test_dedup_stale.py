"""An item fetched before the latest published version is history, not an edit: redelivered
raw messages, racing fetchers and replays must not publish old text as a new version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.dedup.decision import Decision, PartitionState, Seen, decide
from consumers.dedup.restore import FETCHED_AT_HEADER, HASH_HEADER, VERSION_HEADER, fold_message

T0 = datetime(2024, 11, 4, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(milliseconds=1)


def test_older_fetch_with_other_text_is_skipped() -> None:
    assert decide(Seen(2, "h2", T1), "h1", T0) == Decision(None, 2)


def test_same_or_newer_fetch_with_other_text_is_an_update() -> None:
    assert decide(Seen(2, "h2", T1), "h1", T1) == Decision("updated", 3)  # same raw message, new parser
    assert decide(Seen(2, "h2", T0), "h1", T1) == Decision("updated", 3)  # a revert is an edit too
    assert decide(Seen(2, "h2", None), "h1", T0) == Decision("updated", 3)  # unknown time: by hash


def test_redelivered_batch_publishes_nothing_again() -> None:
    state = PartitionState()
    first = [("a", "h1", 0, T0), ("a", "h2", 1, T1)]
    assert [state.decide(*args).version for args in first] == [1, 2]
    # a parse instance died before committing: the same raw messages yield the items again
    redelivered = [("a", "h1", 2, T0), ("a", "h2", 3, T1)]
    assert [state.decide(*args).publish for args in redelivered] == [False, False]
    assert state.seen["a"] == Seen(2, "h2", T1)


def test_restore_reads_the_fetch_time() -> None:
    state = PartitionState()
    headers = {VERSION_HEADER: "2", HASH_HEADER: "h2", FETCHED_AT_HEADER: "2024-11-04T10:00:00.001000Z"}
    fold_message(state, b"a", b"{}", headers)
    assert state.seen["a"] == Seen(2, "h2", T1)
    assert not state.decide("a", "h1", 9, T0).publish
