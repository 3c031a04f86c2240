"""The item schema: what every stage after fetch exchanges, and what subscribers receive.

Times are always timezone-aware and serialised as RFC 3339 UTC with a ``Z`` suffix, so a
subscriber never has to guess an offset.  The schema is versioned (``schema_version``);
a consumer that meets a version it does not know sends the message to the DLQ instead of
guessing.

Within a version, fields are only ever *added*, optional, and items are read tolerantly
(``extra="allow"``): a reader that does not know a newer field keeps it and passes it on
unchanged (dedup republishes what parse wrote), so a rolling upgrade in any order loses
nothing, and the published JSON Schema allows additional properties so a subscriber that
validates against an older copy of it does not reject items with a field added since
(``image`` and ``body_source`` were added that way).  Writers still name every field they
set: mypy checks the keyword arguments against the declared fields.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

SCHEMA_VERSION = 1


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must carry a UTC offset")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; seconds always present, microseconds only if non-zero."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_require_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": "^\\d{4}-\\d{2}-\\d{2}T[0-9:.]+Z$"}),
]

ItemKind = Literal["article", "live_update"]
PublishEvent = Literal["created", "updated"]
BodySource = Literal["feed", "page"]


class Enclosure(BaseModel):
    """A media file attached to an item (podcast audio, a video, an image)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    url: str
    type: str | None = None
    length: int | None = Field(default=None, description="bytes, when the source says")


class NewsItem(BaseModel):
    """One normalized news item: a feed entry, an article, or one fragment of a live page."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, description="Stable across re-fetches; see docs/architecture.md.")
    kind: ItemKind
    source: str = Field(description="The feed id the item was fetched for.")
    url: str | None = Field(default=None, description="Canonical or anchor URL of the item.")
    title: str = ""
    body: str = Field(default="", description="Plain text, paragraphs separated by blank lines.")
    summary: str | None = None
    authors: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    enclosures: list[Enclosure] = Field(default_factory=list)
    language: str | None = Field(default=None, description="BCP 47 tag, e.g. 'en', 'uk'.")
    published_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    fetched_at: UtcDatetime
    parent_id: str | None = Field(default=None, description="Id of the page a live fragment came from.")
    image: str | None = Field(
        default=None,
        description="Absolute http(s) URL of the item's lead image, when the source names one "
        "(not part of content_hash).",
    )
    body_source: BodySource | None = Field(
        default=None,
        description="Where the body came from: 'feed' (the feed entry's own text) or 'page' (the page "
        "it links to, or the page itself); null in items written before the field existed "
        "(not part of content_hash).",
    )
    content_hash: str = Field(description="sha256 of the item's content; changes mean an edit.")


class PublishedItem(NewsItem):
    """What ``news.published`` carries: the item plus its place in the item's history."""

    event: PublishEvent
    version: int = Field(ge=1)


def stable_id(*parts: str) -> str:
    """A short deterministic id: the same inputs always give the same id, on any machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


def content_hash(
    *, title: str, body: str, authors: list[str], url: str | None, summary: str | None = None
) -> str:
    """Hash of what a reader sees.

    Times are left out on purpose: clock-only times are resolved against the fetch time, so
    they may shift between fetches of an unchanged page, and that must not read as an edit.
    Fields are joined with ASCII separators (which never survive text normalisation), cheaper
    than a JSON encoding on pages with hundreds of fragments.
    """
    canonical = "\x1e".join(
        (title, body, "\x1f".join(authors), url or "\x00", "\x00" if summary is None else summary)
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def item_to_json(item: NewsItem) -> bytes:
    return item.model_dump_json().encode("utf-8")


def item_from_json(data: bytes | str) -> NewsItem:
    return NewsItem.model_validate_json(data)


def published_from_json(data: bytes | str) -> PublishedItem:
    return PublishedItem.model_validate_json(data)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a ``news.published`` message (a superset of a ``news.items`` one)."""
    schema = PublishedItem.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://news-ingestor.invalid/schemas/published-item-v1.json"
    return schema
