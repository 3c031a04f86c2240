"""Fragment ids: distinct posts never collapse into one id, and an edited number keeps it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.parse import RawDocument, parse_report
from consumers.parse.fragments import Fragment, build_items

PAGE = "https://news.example/live/bulletins"
FETCHED = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


def _doc() -> RawDocument:
    return RawDocument(body=b"", url=PAGE, feed_id="bulletins", fetched_at=FETCHED)


def _bulletins(count: int, per_minute: int) -> list[Fragment]:
    """``count`` posts, ``per_minute`` of them sharing each minute, newest first."""
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    posts = [
        Fragment(
            title=f"Bulletin {n}: river level at {n % 7 + 2} metres",
            body=f"Gauge {n} reported a reading at the weir.",
            published_at=start + timedelta(minutes=n // per_minute),
        )
        for n in range(count)
    ]
    return list(reversed(posts))


def test_posts_sharing_a_minute_and_a_digitless_headline_all_become_items() -> None:
    items = build_items(_doc(), PAGE, _bulletins(300, per_minute=5))
    assert len(items) == 300
    assert len({item.id for item in items}) == 300


def test_the_oldest_of_a_colliding_group_keeps_the_plain_id_and_new_posts_move_nothing() -> None:
    before = build_items(_doc(), PAGE, _bulletins(10, per_minute=5))
    after = build_items(_doc(), PAGE, _bulletins(12, per_minute=5))  # two newer posts on top
    ids_before = {item.title: item.id for item in before}
    ids_after = {item.title: item.id for item in after}
    assert all(ids_after[title] == item_id for title, item_id in ids_before.items())
    # The oldest post of a minute has the id a lone post of that minute would have had.
    lone = build_items(_doc(), PAGE, [_bulletins(10, per_minute=5)[-1]])
    assert lone[0].id == ids_before[lone[0].title]


def test_an_edit_of_a_number_keeps_the_id() -> None:
    fragments = _bulletins(10, per_minute=5)
    edited = list(fragments)
    old = fragments[3]
    edited[3] = Fragment(
        title=old.title.replace(" metres", "0 metres"),  # "at 5 metres" -> "at 50 metres"
        body=old.body + " Revised: 14 injured, not 17.",
        published_at=old.published_at,
    )
    ids = [item.id for item in build_items(_doc(), PAGE, fragments)]
    ids_edited = [item.id for item in build_items(_doc(), PAGE, edited)]
    assert ids == ids_edited


def test_a_verbatim_repeat_shares_the_id_and_is_counted_not_silently_lost() -> None:
    fragments = _bulletins(4, per_minute=4)
    repeated = [fragments[2], *fragments]  # a pinned copy of an older post shown on top
    items = build_items(_doc(), PAGE, repeated)
    assert len(items) == 5
    assert items[0].id == items[3].id

    text = "\n\n".join(
        f"10:0{minute} AM (Updated: )\n\nBulletin {n}: river level rising.\n\nGauge {n} reading."
        for n, minute in ((4, 1), (3, 1), (2, 1), (1, 0), (0, 0))
    )
    report = parse_report(
        RawDocument(
            body=text.encode(),
            url=PAGE,
            feed_id="bulletins",
            fetched_at=FETCHED,
            content_type="text/plain; charset=utf-8",
        )
    )
    titles = [item.title for item in report.items if item.kind == "live_update"]
    assert len(titles) == len(set(titles)) == 5, titles
    assert report.dropped == {}
