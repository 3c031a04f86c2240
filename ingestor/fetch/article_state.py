"""An article request and the article-state record: what the fetcher remembers per entry.

Plain data and its (de)serialisation, nothing else, so that the decisions (``article_decision``),
the shell (``articles``) and ``ingestor status`` read one definition.  The record lives in the
compacted ``full_text.state_topic``, keyed by entry id, and is the fetcher's only memory: it
must survive restarts, version upgrades and other writers, so it is versioned JSON, decoding
ignores fields it does not know, and anything unreadable counts as "no record" (costing one
page fetch, never a crash).

A request is the entry as parse would have sent it to ``news.items`` (item JSON), keyed by
feed id; only the few fields the fetcher needs are read here (parse owns the item schema and
validates the entry again when the page comes back in the ``article-entry`` header).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from yarl import URL

from ingestor import headers as hdr

VERSION = 1
Status = Literal["pending", "fallback", "done", "failed"]
STATUSES: frozenset[str] = frozenset(get_args(Status))
#: statuses that still have work (a page to fetch) and so keep the entry in the record
OPEN: frozenset[str] = frozenset({"pending", "fallback"})

MAX_URL = 4096
MAX_ID = 512
#: request headers kept with the work (restored with it after a restart)
CONTEXT_HEADERS = ("source-feed", "raw-partition", "raw-offset", hdr.FEED_TIMEZONE, hdr.FEED_LANGUAGE)
_MAX_CONTEXT_VALUE = 256


class BadRequest(ValueError):
    """A record on the requests topic that is not an entry with an http(s) link."""


@dataclass(frozen=True, slots=True)
class ArticleRequest:
    """One request: the entry whose linked page is wanted, and where it came from."""

    entry_id: str
    feed_id: str
    url: str
    entry: str  # the entry JSON exactly as received
    content_hash: str | None
    seen_at: float  # the request's timestamp (s): the deadline counts from here
    context: tuple[tuple[str, str], ...] = ()  # CONTEXT_HEADERS present on the request

    def header(self, name: str) -> str | None:
        return dict(self.context).get(name)


def parse_request(
    key: bytes | None, value: bytes | None, headers: Mapping[str, str], timestamp_ms: int
) -> ArticleRequest:
    """The request in a requests-topic record, or BadRequest saying why not."""
    if not value:
        raise BadRequest("empty value")
    try:
        text = value.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRequest(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise BadRequest("not a JSON object")
    entry_id, url = data.get("id"), data.get("url")
    if not isinstance(entry_id, str) or not entry_id or len(entry_id) > MAX_ID:
        raise BadRequest("no usable entry id")
    if not isinstance(url, str) or len(url) > MAX_URL or not url.lower().startswith(("http://", "https://")):
        raise BadRequest("no http(s) url")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise BadRequest("url with whitespace or control characters")
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise BadRequest("unreadable url") from None
    if not parsed.host:
        raise BadRequest("url without a host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        url = str(parsed.with_user(None))  # credentials in a link are never sent anywhere
    feed_id = key.decode("utf-8", errors="replace") if key else None
    if not feed_id:
        source = data.get("source")
        feed_id = source if isinstance(source, str) and source else None
    if not feed_id:
        raise BadRequest("no feed id (key or source)")
    digest = data.get("content_hash")
    context = tuple(
        (name, headers[name][:_MAX_CONTEXT_VALUE]) for name in CONTEXT_HEADERS if headers.get(name)
    )
    return ArticleRequest(
        entry_id=entry_id,
        feed_id=feed_id,
        url=url,
        entry=text,
        content_hash=digest if isinstance(digest, str) else None,
        seen_at=max(0.0, timestamp_ms / 1000.0),
        context=context,
    )


@dataclass(frozen=True, slots=True)
class ArticleState:
    """The latest record of one entry's page: its link, status, timing and (while open) the work.

    ``fallback_due``: the entry's feed text has not gone out yet and must at the deadline (false
    for a revisit of a page already published, whose text must not be replaced by the feed's).
    """

    entry_id: str
    feed_id: str
    url: str
    status: Status
    first_seen: float
    updated_at: float
    attempts: int = 0
    next_try: float | None = None
    fetched_at: float | None = None  # when the page was last produced
    reason: str | None = None  # the last failure, or why the fallback went out
    fallback_due: bool = True
    content_hash: str | None = None  # of the entry as last requested
    entry: str | None = None  # the entry JSON, while the work is open
    context: tuple[tuple[str, str], ...] = ()

    @property
    def open(self) -> bool:
        return self.status in OPEN

    def closed(self, status: Status, now: float, **changes: Any) -> ArticleState:
        """The record once the work is over: the entry is dropped (the page or the fallback
        carried it), what the next request is compared with stays."""
        return replace(
            self,
            status=status,
            updated_at=now,
            next_try=None,
            fallback_due=False,
            entry=None,
            context=(),
            **changes,
        )

    def header(self, name: str) -> str | None:
        return dict(self.context).get(name)


def encode(state: ArticleState) -> bytes:
    record: dict[str, Any] = {
        "v": VERSION,
        "id": state.entry_id,
        "feed": state.feed_id,
        "url": state.url,
        "status": state.status,
        "first_seen": round(state.first_seen, 3),
        "updated_at": round(state.updated_at, 3),
        "attempts": state.attempts,
    }
    optional: dict[str, Any] = {
        "next_try": None if state.next_try is None else round(state.next_try, 3),
        "fetched_at": None if state.fetched_at is None else round(state.fetched_at, 3),
        "reason": state.reason,
        "hash": state.content_hash,
        "entry": state.entry,
        "context": dict(state.context) or None,
    }
    record.update({k: v for k, v in optional.items() if v is not None})
    if state.open:
        record["fallback_due"] = state.fallback_due
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def decode(data: bytes | None) -> ArticleState | None:
    """The record, or None for a tombstone, a newer major version, or anything unreadable."""
    if not data:
        return None
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or raw.get("v") != VERSION:
        return None
    entry_id, feed_id, url, status = (_text(raw, k) for k in ("id", "feed", "url", "status"))
    first_seen, updated_at = _number(raw, "first_seen"), _number(raw, "updated_at")
    if not entry_id or feed_id is None or url is None or status not in STATUSES:
        return None
    if first_seen is None or updated_at is None:
        return None
    attempts = raw.get("attempts")
    context = raw.get("context")
    pairs = (
        tuple((k, v) for k, v in context.items() if k in CONTEXT_HEADERS and isinstance(v, str))
        if isinstance(context, dict)
        else ()
    )
    fallback_due = raw.get("fallback_due")
    return ArticleState(
        entry_id=entry_id,
        feed_id=feed_id,
        url=url,
        status=status,  # type: ignore[arg-type]  # checked against STATUSES above
        first_seen=first_seen,
        updated_at=updated_at,
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0,
        next_try=_number(raw, "next_try"),
        fetched_at=_number(raw, "fetched_at"),
        reason=_text(raw, "reason"),
        fallback_due=fallback_due if isinstance(fallback_due, bool) else status == "pending",
        content_hash=_text(raw, "hash"),
        entry=_text(raw, "entry"),
        context=pairs,
    )
