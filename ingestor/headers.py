"""Kafka header names shared by the stages (the contract between fetch, parse, dedup and DLQ).

Header values are UTF-8 bytes; a missing header means "unknown", never an empty string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = list[tuple[str, bytes]]

# news.raw (set by the fetcher)
URL = "url"
FINAL_URL = "final-url"
STATUS = "status"
CONTENT_TYPE = "content-type"
ETAG = "etag"
LAST_MODIFIED = "last-modified"
FETCHED_AT = "fetched-at"
BODY_SHA256 = "body-sha256"
FEED_TIMEZONE = "feed-timezone"
FEED_FORMAT = "feed-format"
FEED_LANGUAGE = "feed-language"
VIA = "via"  # "poll", "push" (WebSub) or "article" (an entry's linked page)
FEED_FULL_TEXT = "feed-full-text"  # auto | always | never, resolved by the fetcher

# lineage timestamps (ms since the epoch): news.items (set by parse), copied to news.published
# by dedup, which adds its input's own; one published event then carries its latency per hop
RAW_TIMESTAMP = "raw-timestamp"  # the news.raw record's timestamp
ITEMS_TIMESTAMP = "items-timestamp"  # the news.items record's timestamp (news.published only)

# news.article-requests (set by parse) and the article records on news.raw (set by fetch)
ARTICLE_ENTRY = "article-entry"  # the entry (item JSON) whose page this is
ARTICLE_OUTCOME = "article-outcome"  # "page", or why the feed's text stands (a fallback)

# news.dlq (set by whichever stage refused the message)
DLQ_STAGE = "dlq-stage"
DLQ_ERROR_TYPE = "dlq-error-type"
DLQ_ERROR_MESSAGE = "dlq-error-message"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_FAILED_AT = "dlq-failed-at"


def build(pairs: Iterable[tuple[str, str | None]]) -> Headers:
    """Headers from (name, text) pairs, leaving out the unknown ones."""
    return [(name, value.encode("utf-8")) for name, value in pairs if value is not None]


def as_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Header text by name (the last one wins), undecodable bytes replaced rather than fatal."""
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name] = value.decode("utf-8", errors="replace") if value is not None else ""
    return result
