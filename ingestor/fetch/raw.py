"""Writes a fetched (or pushed) body to news.raw, with the headers the parse stage reads.

One place for the message format of news.raw, so that a polled and a pushed body are
indistinguishable downstream except for ``via``; the caller awaits the broker's
acknowledgement, since only an acknowledged body may move the feed's validators.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from ingestor import headers as hdr
from ingestor.fetch.feedspec import AnyFeed
from ingestor.fetch.http import FetchResult
from ingestor.models import format_utc


def fetch_headers(url: str, result: FetchResult) -> list[tuple[str, str | None]]:
    """What the response said, as news.raw headers (a feed's body and an article page alike)."""
    return [
        (hdr.URL, url),
        (hdr.FINAL_URL, result.final_url),
        (hdr.STATUS, str(result.status) if result.status is not None else None),
        (hdr.CONTENT_TYPE, result.content_type),
        (hdr.ETAG, result.etag),
        (hdr.LAST_MODIFIED, result.last_modified),
        (hdr.FETCHED_AT, format_utc(result.fetched_at)),
        (hdr.BODY_SHA256, result.sha256),
    ]


class RawSink:
    """The stage's producer (set while started) and the one thing the fetch path sends with it."""

    def __init__(self, topic: str, full_text_mode: str = "never") -> None:
        self.topic = topic
        #: ``full_text.mode``, for feeds that do not set ``full_text`` themselves
        self.full_text_mode = full_text_mode
        self.producer: AIOKafkaProducer | None = None

    async def produce(self, feed: AnyFeed, result: FetchResult, *, via: str = "poll") -> None:
        assert self.producer is not None and result.body is not None
        headers = hdr.build(
            [
                *fetch_headers(feed.url, result),
                (hdr.FEED_TIMEZONE, feed.timezone),
                (hdr.FEED_FORMAT, feed.format),
                (hdr.FEED_LANGUAGE, feed.language),
                (hdr.FEED_FULL_TEXT, feed.full_text or self.full_text_mode),
                (hdr.VIA, via),
            ]
        )
        await self.producer.send_and_wait(
            self.topic, value=result.body, key=feed.id.encode("utf-8"), headers=headers
        )
