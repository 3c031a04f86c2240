"""The parse stage's input and error types: bytes plus what the fetcher knew, in; items or a
classified error, out.  Pure: no I/O, no aiohttp, no aiokafka."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from ingestor.models import NewsItem

FeedFormat = Literal["auto", "feed", "text", "html"]

DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_MAX_ITEMS: Final = 5_000

#: The reasons a document can be refused; each becomes the ``error-type`` header on news.dlq
#: and a label of the parse-failure counter, so keep the set small and stable.
ParseFailureReason = Literal[
    "empty",  # no bytes, or only whitespace
    "too_large",  # over the stage's size cap
    "decode_error",  # no charset decodes it
    "not_a_feed",  # HTML/text where a feed was required, or a bot wall / error page
    "malformed",  # a feed or page too broken to yield anything
    "unsafe",  # refused for safety: entity expansion, external entities
    "no_items",  # parsed, but nothing in it is a news item
    "unsupported",  # a format we do not handle (e.g. binary)
]


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One fetched document and the feed settings that shape how it is read."""

    body: bytes
    url: str
    feed_id: str
    fetched_at: datetime
    content_type: str | None = None
    final_url: str | None = None
    timezone: str = "UTC"
    format: FeedFormat = "auto"
    language: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.final_url or self.url


class ParseError(Exception):
    """A document that yields no items, with the reason an operator and the DLQ see."""

    def __init__(self, reason: ParseFailureReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: ParseFailureReason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on what one document may cost or yield, whatever it contains.

    Every byte comes from a server nobody here controls, so each bound is on the document,
    not on what a well-meaning publisher would send: a page of 38,000 "posts" is an attack
    or a broken CMS, and either way it must not flood ``news.items``.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    #: Items kept per document; the rest (the oldest, as documents list newest first) are
    #: dropped, counted and logged.
    max_items: int = DEFAULT_MAX_ITEMS
    #: Item text may be at most this many characters per input byte (plus a small constant):
    #: a parser that writes far more than it read is expanding something it should not.
    max_output_ratio: float = 4.0


@dataclass(slots=True)
class ParseReport:
    """A parse's items plus what was dropped on the way, so the I/O shell can count and log
    it: the pure core never logs, and nothing it drops may go unseen."""

    items: list[NewsItem]
    #: Reason -> count: ``over_item_cap`` (items past ``max_items``), ``duplicate_id`` (two
    #: items of one document with the same id; the first is kept).
    dropped: dict[str, int] = field(default_factory=dict)
