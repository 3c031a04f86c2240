"""Feeds to items: ids, text, people, dates with their own offsets, and every refusal classified."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from consumers.parse import ParseError, RawDocument, parse_document, sniff
from consumers.parse import feed as feed_module
from consumers.parse.feed import author_name, enclosures_of, parse_date
from ingestor.models import NewsItem, content_hash, stable_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
FETCHED = datetime(2024, 11, 5, 12, 0, tzinfo=UTC)
KYIV = "Europe/Kyiv"


def doc(name_or_body: str | bytes, **kwargs: Any) -> RawDocument:
    body = name_or_body if isinstance(name_or_body, bytes) else (FIXTURES / name_or_body).read_bytes()
    settings: dict[str, Any] = {
        "url": "https://feed.example/rss",
        "feed_id": "gazette",
        "fetched_at": FETCHED,
    }
    settings.update(kwargs)
    return RawDocument(body=body, **settings)


def parse(name_or_body: str | bytes, **kwargs: Any) -> list[NewsItem]:
    return parse_document(doc(name_or_body, **kwargs))


def reason(name_or_body: str | bytes, **kwargs: Any) -> str:
    with pytest.raises(ParseError) as info:
        parse(name_or_body, **kwargs)
    return info.value.reason


# --- RSS 2.0 -------------------------------------------------------------------------------


def test_rss2_entry_fields() -> None:
    first, second, *_ = parse("rss2_news.xml", timezone=KYIV)
    assert first.kind == "article"
    assert first.id == stable_id("gazette", "guid:gazette-1001")
    assert first.source == "gazette"
    assert first.url == "https://gazette.example/news/ferry-timetable"
    assert first.title == "Ferry timetable changes from Monday"
    assert first.body == (
        "The early ferry will leave at 6:40 AM from Monday, the harbour office said.\n\n"
        "Passengers with season tickets & day passes are not affected."
    )
    assert first.summary == "The early ferry moves to 6:40."
    assert first.authors == ["Olena Marchenko"]
    assert first.categories == ["Transport", "Harbour"]
    assert first.language == "en-GB"
    assert first.fetched_at == FETCHED
    assert first.content_hash == content_hash(
        title=first.title, body=first.body, authors=first.authors, url=first.url, summary=first.summary
    )
    assert second.authors == ["News Desk"]
    assert second.body == "The town library will stay open until 21:00 on Thursdays."
    assert second.summary is None


def test_dates_keep_their_own_offsets() -> None:
    first, second, third, fourth = parse("rss2_news.xml", timezone=KYIV)
    assert first.published_at == datetime(2024, 11, 4, 8, 15, tzinfo=timezone(timedelta(hours=2)))
    assert second.published_at == datetime(2024, 11, 3, 17, 5, tzinfo=UTC)
    # a date without an offset is in the feed's time zone (Kyiv is UTC+2 in November)
    assert third.published_at == datetime(2024, 11, 2, 7, 30, tzinfo=UTC)
    assert fourth.published_at == datetime(2024, 11, 2, 12, 0, tzinfo=UTC)  # EST
    assert first.published_at is not None and first.published_at.tzinfo == UTC  # stored as UTC


def test_ids_fall_back_to_link_then_title_and_date() -> None:
    _, _, by_link, by_title = parse("rss2_news.xml")
    assert by_link.url == "https://feed.example/news/market-indoors"  # relative link resolved
    assert by_link.id == stable_id("gazette", "link:https://feed.example/news/market-indoors")
    assert by_title.url is None
    assert by_title.id == stable_id("gazette", "title:Correction notice|Sat, 02 Nov 2024 07:00:00 EST")


def test_ids_are_stable_across_refetches_and_reordering() -> None:
    body = (FIXTURES / "rss2_news.xml").read_bytes()
    first = {item.id: item.content_hash for item in parse(body)}
    again = {item.id: item.content_hash for item in parse(body, fetched_at=FETCHED + timedelta(hours=1))}
    assert first == again
    start, end = body.index(b"<item>"), body.index(b"</item>") + len(b"</item>")
    reordered = body[:start] + body[end:].replace(b"</channel>", body[start:end] + b"</channel>", 1)
    assert {item.id: item.content_hash for item in parse(reordered)} == first


def test_repeated_guids_are_told_apart_deterministically() -> None:
    items = parse("rss2_duplicate_guids.xml")
    ids = [item.id for item in items]
    assert len(set(ids)) == 3
    assert ids == [item.id for item in parse("rss2_duplicate_guids.xml")]
    assert ids[0] == stable_id(
        "gazette", "guid:https://careless.example/", "https://careless.example/a", "Bridge reopens",
        "Tue, 05 Nov 2024 10:00:00 +0000",
    )  # fmt: skip


def test_windows_1251_feed() -> None:
    (item,) = parse("rss2_cp1251.xml")
    assert item.title == "Дощ у понеділок"
    assert item.body == "Синоптики обіцяють дощ і вітер."
    assert item.published_at == datetime(2024, 11, 4, 7, 0, tzinfo=UTC)


def test_netscape_rss091_with_external_dtd() -> None:
    (item,) = parse("rss091_netscape.xml")
    assert (item.title, item.url, item.language) == (
        "Mill wheel restored",
        "https://oldmill.example/wheel",
        "en-US",
    )
    assert item.published_at is None


# --- Atom and RDF --------------------------------------------------------------------------


def test_atom_entries_in_ukrainian() -> None:
    first, second = parse("atom_uk.xml")
    assert first.title == "Нова лінія трамвая"
    assert first.body == "Трамвай курсуватиме кожні десять хвилин.\n\nПерший рейс о 5:30."
    assert first.summary == "Коротко про нову лінію."
    assert first.authors == ["Ірина Коваль", "Петро Гнатюк"]
    assert first.categories == ["місто"]
    assert first.language == "uk"
    assert first.published_at == datetime(2024, 11, 4, 4, 36, tzinfo=UTC)
    assert first.updated_at == datetime(2024, 11, 4, 6, 5, tzinfo=UTC)
    assert first.id == stable_id("gazette", "guid:tag:visti.example,2024:entry-77")
    # only <updated>: it is the publication time, and there is no separate update
    assert (second.published_at, second.updated_at) == (datetime(2024, 11, 3, 22, 10, tzinfo=UTC), None)
    assert (second.body, second.summary) == ("Розклад оновлено.", None)


def test_rdf_with_dublin_core() -> None:
    (item,) = parse("rdf_dcdate.xml")
    assert (item.title, item.authors, item.language) == ("Neue Brücke", ["Anna Berg"], "de")
    assert item.published_at == datetime(2024, 3, 31, 0, 30, tzinfo=UTC)


# --- JSON Feed -----------------------------------------------------------------------------


def test_json_feed_11() -> None:
    first, second = parse("jsonfeed_11.json", url="https://quarry.example/feed.json")
    assert first.id == stable_id("gazette", "guid:qr-2024-11-04-a")
    assert first.url == "https://quarry.example/posts/road-works"
    assert first.body == "Works begin at 7:00 and last two weeks."
    assert first.summary == "Two weeks of road works."
    assert first.authors == ["Sam Reed"]
    assert first.categories == ["roads", "works"]
    assert first.language == "en"
    assert first.published_at == datetime(2024, 11, 4, 6, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2024, 11, 4, 8, 30, tzinfo=UTC)
    assert second.id == stable_id("gazette", "guid:42")
    assert second.title == ""
    assert second.authors == ["Bulletin Staff"]  # feed-level authors
    assert second.body == "Bin collection moves to Friday this week.\n\nPlease put bins out by 7am."


def test_json_feed_10_author() -> None:
    (item,) = parse("jsonfeed_10.json", content_type="application/json")
    assert item.authors == ["Solo Writer"]
    assert item.published_at == datetime(2024, 1, 2, 8, 4, 5, tzinfo=UTC)


def test_json_that_is_not_a_feed() -> None:
    assert reason(b'{"hello": "world"}') == "not_a_feed"
    assert reason(b'{"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": ') == "malformed"
    assert reason(b'{"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": []}') == "no_items"


# --- classification ------------------------------------------------------------------------


def test_empty_and_whitespace() -> None:
    assert reason(b"") == "empty"
    assert reason(b"\xef\xbb\xbf  \r\n\t ") == "empty"


def test_too_large() -> None:
    body = (FIXTURES / "rss2_news.xml").read_bytes()
    with pytest.raises(ParseError) as info:
        parse_document(doc(body), max_bytes=100)
    assert info.value.reason == "too_large"


def test_bot_wall_where_a_feed_was_required() -> None:
    assert reason("bot_wall.html", format="feed", content_type="application/rss+xml") == "not_a_feed"
    assert reason("bot_wall.html", format="feed") == "not_a_feed"


def test_feed_without_entries() -> None:
    assert reason("rss2_no_items.xml") == "no_items"


def test_broken_xml_without_anything_in_it() -> None:
    assert reason(b'<?xml version="1.0"?>\n<rss version="2.0"><chan') == "malformed"


def test_binary_is_unsupported() -> None:
    assert reason(b"\x1f\x8b\x08\x00" + bytes(range(256))) == "unsupported"


def test_unexpected_crash_is_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr("consumers.parse.feed.feedparser.parse", boom)
    with pytest.raises(ParseError) as info:
        parse("rss2_news.xml")
    assert info.value.reason == "malformed"
    assert "KeyError" in info.value.message


def test_naive_fetch_time_is_taken_as_utc() -> None:
    items = parse("rss2_no_items.xml".replace("no_items", "news"), fetched_at=datetime(2024, 11, 5, 12, 0))
    assert items[0].fetched_at == FETCHED


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "shape"),
    [
        (b'\xef\xbb\xbf\n\n  <?xml version="1.0"?><rss version="2.0"/>', "text/html", "feed"),
        (b"<!-- generated --><feed xmlns='http://www.w3.org/2005/Atom'/>", None, "feed"),
        (b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='x'/>", "text/plain", "feed"),
        (b'  {"version": "https://jsonfeed.org/version/1"}', None, "feed"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "application/rss+xml", "html"),
        (b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "x" "y"><html/>', None, "html"),
        (b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "x" "y"><rss/>', None, "feed"),
        ("<rss version='2.0'/>".encode("utf-16"), None, "feed"),
        (b"date 2024-11-04 Skip to content\nHeadline\n", None, "text"),
        (b"date 2024-11-04\nHeadline\n", "text/html; charset=utf-8", "html"),
        (b"PHP Warning: oops\n<?xml version='1.0'?><rss/>", None, "feed"),
        (b"[Live] Storm updates\n\n10:05 Ferries stop\n", None, "text"),
        (b'\xef\xbb\xbf[\n  {"version": 1}]', None, "feed"),
        (b"%PDF-1.7 ...", "application/xml", "binary"),
    ],
)
def test_sniffing(body: bytes, content_type: str | None, shape: str) -> None:
    assert sniff(body, content_type) == shape


def test_forced_format_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_text_capture(doc: RawDocument, text: str) -> list[NewsItem]:
        seen.append("text:" + text[:5])
        return []

    monkeypatch.setattr("consumers.parse.dispatch.parse_text_capture", fake_text_capture)
    parse("rss2_news.xml", format="text")
    assert seen == ["text:<?xml"]


# --- live blogs inside an entry ------------------------------------------------------------


def test_live_entry_is_split_and_the_entry_kept_as_parent() -> None:
    items = parse("rss2_live_entry.xml")
    entry, *updates = items
    assert entry.kind == "article"
    assert len(updates) >= 2
    assert all(update.kind == "live_update" and update.parent_id == entry.id for update in updates)
    assert len({item.id for item in items}) == len(items)


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mon, 04 Nov 2024 08:15:00 +0200",
            datetime(2024, 11, 4, 8, 15, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("Mon, 04 Nov 2024 08:15:00 -0000", datetime(2024, 11, 4, 8, 15, tzinfo=UTC)),
        ("4 Nov 2024 08:15 PDT", datetime(2024, 11, 4, 15, 15, tzinfo=UTC)),
        ("2024-11-04T08:15:00.5+05:30", datetime(2024, 11, 4, 2, 45, 0, 500000, tzinfo=UTC)),
        ("2024-11-04T08:15:00Z", datetime(2024, 11, 4, 8, 15, tzinfo=UTC)),
        ("2024-11-04", datetime(2024, 11, 3, 22, 0, tzinfo=UTC)),  # midnight in Kyiv
        ("November 4, 2024 8:15 AM", datetime(2024, 11, 4, 6, 15, tzinfo=UTC)),
        ("2024-03-31 04:30", datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),  # after the spring change
        ("8:15 AM", None),  # no date: never filled in from today
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text, feed_module.feed_zone(KYIV)) == expected


def test_parse_date_falls_back_to_feedparsers_tuple_as_utc() -> None:
    value = parse_date("garbage", UTC, (2024, 11, 4, 8, 15, 0, 0, 309, 0))
    assert value == datetime(2024, 11, 4, 8, 15, tzinfo=UTC)


@pytest.mark.timeout(10)
def test_a_huge_date_is_not_read() -> None:
    """dateutil's tokenizer is quadratic in a long string: 256 KB of "a." took 5 s before
    date strings were capped (a date is a few dozen characters)."""
    junk = "a." * 131_072
    started = time.perf_counter()
    assert parse_date(junk, UTC) is None
    feedparsers = (2024, 11, 4, 8, 15, 0, 0, 309, 0)
    assert parse_date(junk, UTC, feedparsers) == datetime(2024, 11, 4, 8, 15, tzinfo=UTC)
    [item] = parse(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Gazette</title><item>'
        b"<title>Harbour cranes idle</title><link>https://gazette.example/a</link>"
        b"<description>Dockworkers left the cranes idle.</description>"
        b"<pubDate>" + junk.encode() + b"</pubDate></item></channel></rss>"
    )
    assert item.title == "Harbour cranes idle"
    assert time.perf_counter() - started < 1.0


def test_unknown_time_zone_falls_back_to_utc() -> None:
    assert feed_module.feed_zone("Mars/Olympus") is UTC


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("desk@gazette.example (News Desk)", "News Desk"),
        ("News Desk <desk@gazette.example>", "News Desk"),
        ("Olena Marchenko", "Olena Marchenko"),
        ("desk@gazette.example", "desk@gazette.example"),
    ],
)
def test_author_name(raw: str, name: str) -> None:
    assert author_name(raw) == name


def test_enclosures() -> None:
    links: list[dict[str, Any]] = [
        {"href": "/a.mp3", "type": "audio/mpeg", "length": "12"},
        {"url": "https://x/b.png", "size_in_bytes": 4},
    ]
    assert enclosures_of(links, "https://gazette.example/feed") == [
        {"url": "https://gazette.example/a.mp3", "type": "audio/mpeg", "length": 12},
        {"url": "https://x/b.png", "type": None, "length": 4},
    ]
