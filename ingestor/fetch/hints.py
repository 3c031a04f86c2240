"""What a server tells us about when to come back: Cache-Control, Expires, RSS <ttl>, Retry-After.

Pure parsing, forgiving by design: a malformed hint is ignored (None), never an error,
because a hint can only ever widen the schedule and a bad one must not break a fetch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|=|$)", re.IGNORECASE)
_TTL = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>", re.IGNORECASE)
_TTL_SCAN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Hints:
    """Seconds from the response time; None where the server said nothing usable."""

    max_age: float | None = None
    expires: float | None = None
    ttl: float | None = None
    retry_after: float | None = None

    def widen_to(self) -> float | None:
        """The longest cache hint (Retry-After is separate: it is a floor, not a preference)."""
        values = [v for v in (self.max_age, self.expires, self.ttl) if v is not None and v > 0]
        return max(values) if values else None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cache_max_age(cache_control: str | None) -> float | None:
    if not cache_control or _NO_CACHE.search(cache_control):
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def expires_in(expires: str | None, date: str | None, now: datetime) -> float | None:
    """Measured against the server's own Date when it sent one, so clock skew cancels out."""
    if not expires:
        return None
    when = _http_date(expires)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    seconds = (when - (reference or now)).total_seconds()
    return seconds if seconds > 0 else None


def retry_after(value: str | None, now: datetime) -> float | None:
    """Delta-seconds or an HTTP-date (RFC 9110 §10.2.3); 0 means "now", which is still a floor."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    when = _http_date(text)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def rss_ttl(body: bytes | None) -> float | None:
    """RSS 2.0 <ttl> is in minutes; only the start of the document is scanned."""
    if not body:
        return None
    match = _TTL.search(body[:_TTL_SCAN_BYTES])
    if not match:
        return None
    minutes = int(match.group(1))
    return minutes * 60.0 if minutes > 0 else None


#: A response that gives no hint at all (most 304s): one shared value, no parsing.
NO_HINTS = Hints()


def from_response(headers: Mapping[str, str], body: bytes | None, now: datetime) -> Hints:
    cache_control, expires = headers.get("cache-control"), headers.get("expires")
    after = headers.get("retry-after")
    if cache_control is None and expires is None and after is None and not body:
        return NO_HINTS
    return Hints(
        max_age=cache_max_age(cache_control),
        expires=expires_in(expires, headers.get("date"), now),
        ttl=rss_ttl(body),
        retry_after=retry_after(after, now),
    )
