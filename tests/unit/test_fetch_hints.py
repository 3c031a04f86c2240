"""Server hints about when to come back."""

from __future__ import annotations

from datetime import UTC, datetime

from ingestor.fetch import hints

NOW = datetime(2024, 11, 4, 12, 0, 0, tzinfo=UTC)


def test_cache_control() -> None:
    assert hints.cache_max_age("public, max-age=600") == 600
    assert hints.cache_max_age('max-age="60", must-revalidate') == 60
    assert hints.cache_max_age("s-maxage=900") is None
    assert hints.cache_max_age("no-cache, max-age=600") is None
    assert hints.cache_max_age("max-age=abc") is None
    assert hints.cache_max_age(None) is None


def test_expires_against_server_date() -> None:
    date = "Mon, 04 Nov 2024 10:00:00 GMT"  # the server's clock is two hours behind ours
    assert hints.expires_in("Mon, 04 Nov 2024 10:30:00 GMT", date, NOW) == 1800
    assert hints.expires_in("Mon, 04 Nov 2024 12:30:00 GMT", None, NOW) == 1800
    assert hints.expires_in("0", None, NOW) is None
    assert hints.expires_in("Mon, 04 Nov 2024 11:00:00 GMT", None, NOW) is None  # already expired


def test_retry_after() -> None:
    assert hints.retry_after("120", NOW) == 120
    assert hints.retry_after("Mon, 04 Nov 2024 12:05:00 GMT", NOW) == 300
    assert hints.retry_after("Mon, 04 Nov 2024 11:00:00 GMT", NOW) == 0
    assert hints.retry_after("soon", NOW) is None
    assert hints.retry_after(None, NOW) is None


def test_rss_ttl_minutes() -> None:
    assert hints.rss_ttl(b"<rss><channel><ttl>60</ttl></channel></rss>") == 3600
    assert hints.rss_ttl(b"<rss><channel><ttl> 0 </ttl></channel></rss>") is None
    assert hints.rss_ttl(b"<rss></rss>") is None
    assert hints.rss_ttl(None) is None


def test_from_response_and_widest() -> None:
    h = hints.from_response(
        {"cache-control": "max-age=300", "retry-after": "30"}, b"<rss><ttl>10</ttl></rss>", NOW
    )
    assert (h.max_age, h.ttl, h.retry_after, h.expires) == (300, 600, 30, None)
    assert h.widen_to() == 600
    assert hints.Hints().widen_to() is None


def test_a_response_without_hints_gets_the_shared_empty_hints() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    plain = {"etag": '"x"', "date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert hints.from_response(plain, None, now) is hints.NO_HINTS
    assert hints.from_response({}, b"", now) is hints.NO_HINTS
    assert hints.from_response({"cache-control": "max-age=60"}, None, now).max_age == 60.0
    assert hints.from_response({}, b"<rss><ttl>5</ttl></rss>", now).ttl == 300.0
    assert hints.from_response({"retry-after": "7"}, None, now).retry_after == 7.0
