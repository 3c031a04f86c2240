"""The dedup decision and its crash/restore behaviour, as pure logic (the Kafka behaviour is
proven against the real broker in tests/integration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.dedup.decision import Decision, PartitionState, Seen, decide
from consumers.dedup.restore import fold_message


def test_new_id_is_created_v1() -> None:
    assert decide(None, "h1") == Decision("created", 1)


def test_same_hash_is_not_published() -> None:
    assert decide(Seen(3, "h1"), "h1") == Decision(None, 3)
    assert not decide(Seen(3, "h1"), "h1").publish


def test_changed_hash_is_next_version() -> None:
    assert decide(Seen(3, "h1"), "h2") == Decision("updated", 4)


def test_reverted_content_is_a_new_version() -> None:
    state = PartitionState()
    assert state.decide("a", "h1", 0).version == 1
    assert state.decide("a", "h2", 1).version == 2
    assert state.decide("a", "h1", 2) == Decision("updated", 3)


def test_records_at_or_below_restored_offset_are_already_decided() -> None:
    state = PartitionState()
    fold_message(state, b"a", None, {"item-version": "1", "content-hash": "h", "items-offset": "7"})
    assert state.already_decided(7)
    assert not state.already_decided(8)
    assert state.seen["a"] == Seen(1, "h")


def test_fold_falls_back_to_json_body_and_skips_garbage() -> None:
    state = PartitionState()
    fold_message(state, b"x", b'{"id": "x", "version": 2, "content_hash": "hx"}', {})
    fold_message(state, b"y", b"not json", {})
    assert state.seen == {"x": Seen(2, "hx")}


# ---- property: crashes and restarts never change what is published ------------------------


@dataclass
class Log:
    """A partition of news.items or news.published: append-only, with offsets."""

    records: list[tuple[str, str, int, int]] = field(default_factory=list)  # id, hash, version, src


def run_with_crashes(items: list[tuple[str, str]], crash_points: set[int], commit_every: int) -> Log:
    """Replay the dedup stage over `items`, crashing (losing memory and uncommitted progress)
    right after publishing the record at each crash point, then restoring from the output."""
    published = Log()
    committed = 0
    state = PartitionState()
    offset = committed
    crashed_at: set[int] = set()
    while offset < len(items):
        item_id, content_hash = items[offset]
        if not state.already_decided(offset):
            decision = state.decide(item_id, content_hash, offset)
            if decision.publish:
                published.records.append((item_id, content_hash, decision.version, offset))
        offset += 1
        if offset % commit_every == 0:
            committed = offset
        if (offset - 1) in crash_points and (offset - 1) not in crashed_at:
            crashed_at.add(offset - 1)
            state = PartitionState()  # the process dies: memory gone
            for rid, rhash, version, src in published.records:  # restore from news.published
                state.record_published(rid, version, rhash, src)
            offset = committed  # resume from the last committed offset
    return published


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["h1", "h2", "h3"])),
        max_size=40,
    ),
    crash_points=st.sets(st.integers(min_value=0, max_value=39), max_size=8),
    commit_every=st.integers(min_value=1, max_value=7),
)
def test_any_crashes_yield_the_crash_free_published_set(
    items: list[tuple[str, str]], crash_points: set[int], commit_every: int
) -> None:
    expected = run_with_crashes(items, set(), commit_every)
    actual = run_with_crashes(items, crash_points, commit_every)
    assert actual.records == expected.records
    versions: dict[str, list[int]] = {}
    for item_id, _, version, _ in actual.records:
        versions.setdefault(item_id, []).append(version)
    for seq in versions.values():
        assert seq == list(range(1, len(seq) + 1))  # in order, none twice, none skipped
