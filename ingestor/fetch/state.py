"""A feed's fetch state as one small JSON record: what a restarted fetcher needs to resume.

Kept in Kafka (a compacted topic keyed by feed id), not in a local file, so that a fetcher
started on a new machine, or the instance a rebalance hands the feed to, resumes with the
same validators (no re-download, no duplicate produce) and the same schedule (no burst).
Pure: encoding and decoding only; ``store`` does the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ingestor.fetch.schedule import FeedTiming

VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedState:
    url: str
    etag: str | None
    last_modified: str | None
    sha256: str | None
    failures: int
    change_interval: float | None
    last_change_at: float | None
    next_due: float | None
    saved_at: float

    def apply_to(self, timing: FeedTiming) -> None:
        timing.failures = self.failures
        timing.change_interval = self.change_interval
        timing.last_change_at = self.last_change_at


def encode(state: SavedState) -> bytes:
    payload: dict[str, Any] = {"v": VERSION, **{name: getattr(state, name) for name in state.__slots__}}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def decode(raw: bytes | None) -> SavedState | None:
    """None for a tombstone, a newer version, or anything unreadable: a lost state costs one
    unconditional fetch, which is better than a fetcher that refuses to start."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != VERSION or not isinstance(data.get("url"), str):
        return None
    failures = data.get("failures")
    return SavedState(
        url=data["url"],
        etag=_text(data.get("etag")),
        last_modified=_text(data.get("last_modified")),
        sha256=_text(data.get("sha256")),
        failures=failures if isinstance(failures, int) and failures >= 0 else 0,
        change_interval=_float(data.get("change_interval")),
        last_change_at=_float(data.get("last_change_at")),
        next_due=_float(data.get("next_due")),
        saved_at=_float(data.get("saved_at")) or 0.0,
    )
