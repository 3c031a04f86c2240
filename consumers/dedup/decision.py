"""The dedup decision and the per-partition state it needs; pure, so it is tested without I/O.

State is per partition of ``news.items`` because exactly one instance owns a partition of
``news.items`` and the same partition of ``news.published``.  Besides the version and hash
of every id, a partition remembers the highest ``news.items`` offset whose result is already
on ``news.published``: records at or below it were decided before a crash and must not be
decided again (their state is already the restored one), which is what makes a crash after
publishing but before committing harmless.

Each version also remembers when the document it came from was fetched.  An item fetched
*before* the latest published version is history, not an edit: it reaches news.items again
when a parse instance dies between producing and committing (its uncommitted raw messages are
parsed again, older bodies after newer ones), when two fetchers race, or when `ingestor replay`
re-parses a range.  Comparing it with the latest hash alone would publish the old text as a new
version (and the current text again after it); it is skipped instead.  An item fetched at the
same moment (the same raw message re-parsed, e.g. by a fixed parser) or later is compared by
hash as before, so real changes, reverts included, are still published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Event = Literal["created", "updated"]


@dataclass(frozen=True, slots=True)
class Seen:
    version: int
    content_hash: str
    #: when the document of this version was fetched (None: unknown, e.g. an older record)
    fetched_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """``event`` is None when the item is already published with this content."""

    event: Event | None
    version: int

    @property
    def publish(self) -> bool:
        return self.event is not None


def decide(previous: Seen | None, content_hash: str, fetched_at: datetime | None = None) -> Decision:
    if previous is None:
        return Decision("created", 1)
    if previous.content_hash == content_hash:
        return Decision(None, previous.version)
    if fetched_at is not None and previous.fetched_at is not None and fetched_at < previous.fetched_at:
        return Decision(None, previous.version)  # an older fetch than the latest version: history
    return Decision("updated", previous.version + 1)


@dataclass
class PartitionState:
    """What one partition has published so far."""

    seen: dict[str, Seen] = field(default_factory=dict)
    #: highest news.items offset whose output is known to be on news.published (-1: none)
    decided_through: int = -1

    def already_decided(self, source_offset: int) -> bool:
        return source_offset <= self.decided_through

    def record_published(
        self,
        item_id: str,
        version: int,
        content_hash: str,
        source_offset: int,
        fetched_at: datetime | None = None,
    ) -> None:
        """Fold one news.published message (at restore) or one fresh publication into the state.

        A restore may meet versions out of order only if the log was tampered with; keeping the
        highest version makes the state monotonic either way.
        """
        current = self.seen.get(item_id)
        if current is None or version >= current.version:
            self.seen[item_id] = Seen(version, content_hash, fetched_at)
        if source_offset > self.decided_through:
            self.decided_through = source_offset

    def decide(
        self, item_id: str, content_hash: str, source_offset: int, fetched_at: datetime | None = None
    ) -> Decision:
        """Decide and (when publishing) update the state as if the publication succeeded.

        The caller must drop this state if the publication then fails; the consume loop does
        that by rebuilding the state from news.published on its next assignment.
        """
        decision = decide(self.seen.get(item_id), content_hash, fetched_at)
        if decision.publish:
            self.record_published(item_id, decision.version, content_hash, source_offset, fetched_at)
        return decision
