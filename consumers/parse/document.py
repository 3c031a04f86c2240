"""The parse stage's input and error types: bytes plus what the fetcher knew, in; items or a
classified error, out.  Pure: no I/O, no aiohttp, no aiokafka."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

FeedFormat = Literal["auto", "feed", "text", "html"]

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
