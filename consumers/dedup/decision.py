"""The dedup decision and the per-partition state it needs; pure, so it is tested without I/O.

State is per partition of ``news.items`` because exactly one instance owns a partition of
``news.items`` and the same partition of ``news.published``.  Besides the version and hash
of every id, a partition remembers the highest ``news.items`` offset whose result is already
on ``news.published``: records at or below it were decided before a crash and must not be
decided again (their state is already the restored one), which is what makes a crash after
publishing but before committing harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Event = Literal["created", "updated"]


@dataclass(frozen=True, slots=True)
class Seen:
    version: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class Decision:
    """``event`` is None when the item is already published with this content."""

    event: Event | None
    version: int

    @property
    def publish(self) -> bool:
        return self.event is not None


def decide(previous: Seen | None, content_hash: str) -> Decision:
    if previous is None:
        return Decision("created", 1)
    if previous.content_hash == content_hash:
        return Decision(None, previous.version)
    return Decision("updated", previous.version + 1)


@dataclass
class PartitionState:
    """What one partition has published so far."""

    seen: dict[str, Seen] = field(default_factory=dict)
    #: highest news.items offset whose output is known to be on news.published (-1: none)
    decided_through: int = -1

    def already_decided(self, source_offset: int) -> bool:
        return source_offset <= self.decided_through

    def record_published(self, item_id: str, version: int, content_hash: str, source_offset: int) -> None:
        """Fold one news.published message (at restore) or one fresh publication into the state.

        A restore may meet versions out of order only if the log was tampered with; keeping the
        highest version makes the state monotonic either way.
        """
        current = self.seen.get(item_id)
        if current is None or version >= current.version:
            self.seen[item_id] = Seen(version, content_hash)
        if source_offset > self.decided_through:
            self.decided_through = source_offset

    def decide(self, item_id: str, content_hash: str, source_offset: int) -> Decision:
        """Decide and (when publishing) update the state as if the publication succeeded.

        The caller must drop this state if the publication then fails; the consume loop does
        that by rebuilding the state from news.published on its next assignment.
        """
        decision = decide(self.seen.get(item_id), content_hash)
        if decision.publish:
            self.record_published(item_id, decision.version, content_hash, source_offset)
        return decision
