"""A feed's state record is written on a material change, not on every fetch."""

from __future__ import annotations

from dataclasses import replace

from ingestor.fetch.state import SavedAttempt, SavedState, SubscriptionState, due_for_saving, material

BASE = SavedState(
    url="https://example.org/feed.xml",
    etag='"v1"',
    last_modified=None,
    sha256="aa",
    failures=0,
    change_interval=300.0,
    last_change_at=1000.0,
    next_due=2000.0,
    saved_at=1000.0,
    instance="fetcher-a",
)


def test_a_fetch_that_only_moves_the_schedule_is_not_written_until_the_refresh() -> None:
    saved = material(BASE)
    later = replace(
        BASE,
        next_due=2300.0,
        saved_at=1300.0,
        attempts=(SavedAttempt(1300.0, "not_modified", 304, 12.0, 0, None, 2300.0),),
    )
    assert material(later) == saved
    assert not due_for_saving(saved, material(later), saved_at=1000.0, now=1030.0, every=60.0)
    assert due_for_saving(saved, material(later), saved_at=1000.0, now=1060.0, every=60.0)


def test_what_a_restart_must_not_lose_is_written_at_once() -> None:
    saved = material(BASE)
    for change in (
        {"etag": '"v2"'},
        {"last_modified": "Mon, 04 Nov 2024 08:36:00 GMT"},
        {"sha256": "bb"},
        {"failures": 1},
        {"change_interval": 120.0},
        {"instance": "fetcher-b"},  # a handover: the new owner says so
    ):
        assert due_for_saving(
            saved, material(replace(BASE, **change)), saved_at=1000.0, now=1001.0, every=60.0
        )


def test_the_first_save_of_an_instance_always_happens() -> None:
    assert due_for_saving(None, material(BASE), saved_at=0.0, now=1.0, every=60.0)


def test_material_is_a_small_fingerprint_of_every_field_that_matters() -> None:
    """Kept per feed (issue 15): a 60-bit int, 32 bytes, instead of a tuple of the fields."""
    fingerprint = material(BASE)
    assert isinstance(fingerprint, int) and 0 <= fingerprint < 2**60
    assert material(replace(BASE)) == fingerprint
    changes = (
        {"url": "https://example.org/other.xml"},
        {"last_change_at": 1001.0},
        {"websub": SubscriptionState("https://hub.example/", "https://example.org/feed.xml", 9.0)},
        {"recent": ("abc",)},
        {"etag": None},
    )
    assert len({fingerprint, *(material(replace(BASE, **change)) for change in changes)}) == 1 + len(changes)
