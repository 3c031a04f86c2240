"""A feed's fetch state as one small JSON record: what a restarted fetcher needs to resume.

Kept in Kafka (a compacted topic keyed by feed id), not in a local file, so that a fetcher
started on a new machine, or the instance a rebalance hands the feed to, resumes with the
same validators (no re-download, no duplicate produce) and the same schedule (no burst).
The record also carries the last few attempts and the WebSub subscription, so that
``ingestor feeds status`` can answer from any process, and a new owner knows the lease.
Pure: encoding and decoding only; ``store`` does the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ingestor.fetch.schedule import FeedTiming

VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedAttempt:
    """One ``feed_fetched`` line, in the shape it is persisted and shown by ``feeds status``."""

    at: float
    outcome: str
    status: int | None
    duration_ms: float
    bytes: int
    reason: str | None
    next_due: float | None
    via: str = "poll"

    def to_json(self) -> list[Any]:
        return [
            self.at,
            self.outcome,
            self.status,
            self.duration_ms,
            self.bytes,
            self.reason,
            self.next_due,
            self.via,
        ]


@dataclass(frozen=True, slots=True)
class SavedCallback:
    """One verified callback of a WebSub subscription: where the hub pushes, until when, and
    the nonce its secret is derived from (HMAC of the operator key, feed id and nonce), so that
    a restarted fetcher can still tell the hub's pushes from forged ones.  Never the secret
    itself: readers of the fetch-state topic are not trusted with secrets (docs/security.md),
    so without an operator key no callback is kept at all."""

    url: str
    lease_until: float
    nonce: str


_MAX_CALLBACKS = 4  # the current subscription and the ones being retired: a record stays small


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """A WebSub subscription as the hub confirmed it, and what it delivered so far."""

    hub: str
    topic: str
    lease_until: float | None
    pushes: int = 0  # new bodies that came by push
    polls: int = 0  # new bodies that only polling found
    callbacks: tuple[SavedCallback, ...] = ()


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
    instance: str | None = None  # the fetcher that wrote it: who owned the feed then
    attempts: tuple[SavedAttempt, ...] = ()
    websub: SubscriptionState | None = None
    recent: tuple[str, ...] = ()  # the replay window: 128-bit prefixes of the last bodies' SHA-256

    def apply_to(self, timing: FeedTiming) -> None:
        timing.failures = self.failures
        timing.change_interval = self.change_interval
        timing.last_change_at = self.last_change_at


#: ``material`` is a 60-bit fingerprint: a small int (32 bytes) rather than a 10-tuple.
_FINGERPRINT = (1 << 60) - 1


def material(state: SavedState) -> int:
    """What a restarted fetcher must not lose: validators, body hash, backoff, cadence, WebSub;
    as a fingerprint, compared with the one of the last record written (``due_for_saving``).

    The schedule and the attempt history change with every fetch; they are refreshed
    periodically instead (see ``due_for_saving``), since losing a minute of them costs at most
    one early fetch after a restart.
    """
    return material_of(
        state.url, state.etag, state.last_modified, state.sha256, state.failures, state.change_interval,
        state.last_change_at, state.instance, state.websub, state.recent,
    )  # fmt: skip


def material_of(
    url: str,
    etag: str | None,
    last_modified: str | None,
    sha256: str | None,
    failures: int,
    change_interval: float | None,
    last_change_at: float | None,
    instance: str | None,
    websub: SubscriptionState | None,
    recent: tuple[str, ...],
) -> int:
    """``material`` of the record these fields would make, without making it (see ``decide``).

    A hash, not the fields themselves: every owned feed keeps the one of its last record, and
    the tuple it replaced cost 120 bytes per feed, plus the strings it kept alive (the URL and
    owner of the record a feed was resumed from; issue 15).  Two different materials with one
    fingerprint (a chance of 2**-60 per change; ``str`` hashes are keyed per process unless
    PYTHONHASHSEED fixes the key, so a server cannot choose ETags that collide) would only
    postpone that record to the periodic refresh (``fetch.state_refresh``).
    """
    fields = (
        url, etag, last_modified, sha256, failures, change_interval, last_change_at, instance, websub, recent,
    )  # fmt: skip
    return hash(fields) & _FINGERPRINT


def adopted(saved: SavedState, instance: str) -> tuple[int, float]:
    """(material, saved at) for a feed resumed from ``saved`` by ``instance``: the record already
    in the topic counts as this instance's last write.  A restart or a handover of 100,000 feeds
    then writes only the records whose material changed, not one per feed; the owner's name in
    the record (``feeds status`` shows it) follows with the next periodic refresh."""
    return material(replace(saved, instance=instance)), saved.saved_at


def due_for_saving(
    previous: int | None,
    current: int,
    saved_at: float,
    now: float,
    every: float,
) -> bool:
    """Write a state record on a material change, on this instance's first save of a feed it did
    not resume from a record (see ``adopted``), and otherwise at most every ``every`` seconds.
    Without this the fetch-state topic would take one record per fetch (a thousand a second at
    100k feeds) for nothing but a moved due time."""
    return previous is None or previous != current or now - saved_at >= every


_PLAIN = (
    "url",
    "etag",
    "last_modified",
    "sha256",
    "failures",
    "change_interval",
    "last_change_at",
    "next_due",
    "saved_at",
    "instance",
)


def encode(state: SavedState) -> bytes:
    payload: dict[str, Any] = {"v": VERSION, **{name: getattr(state, name) for name in _PLAIN}}
    if state.attempts:
        payload["attempts"] = [a.to_json() for a in state.attempts]
    if state.websub is not None:
        sub = state.websub
        payload["websub"] = {
            "hub": sub.hub,
            "topic": sub.topic,
            "lease_until": sub.lease_until,
            "pushes": sub.pushes,
            "polls": sub.polls,
        }
        if sub.callbacks:
            payload["websub"]["callbacks"] = [_callback_json(c) for c in sub.callbacks[-_MAX_CALLBACKS:]]
    if state.recent:
        payload["recent"] = list(state.recent)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _callback_json(callback: SavedCallback) -> dict[str, Any]:
    return {"url": callback.url, "lease_until": callback.lease_until, "nonce": callback.nonce}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _attempt(value: Any) -> SavedAttempt | None:
    if not isinstance(value, list) or len(value) < 7:
        return None
    at, outcome = _float(value[0]), _text(value[1])
    if at is None or outcome is None:
        return None
    status = value[2] if isinstance(value[2], int) and not isinstance(value[2], bool) else None
    via = _text(value[7]) if len(value) > 7 else None
    return SavedAttempt(
        at,
        outcome,
        status,
        _float(value[3]) or 0.0,
        _int(value[4]),
        _text(value[5]),
        _float(value[6]),
        via or "poll",
    )


def _subscription(value: Any) -> SubscriptionState | None:
    if not isinstance(value, dict):
        return None
    hub, topic = _text(value.get("hub")), _text(value.get("topic"))
    if hub is None or topic is None:
        return None
    callbacks = value.get("callbacks")
    return SubscriptionState(
        hub,
        topic,
        _float(value.get("lease_until")),
        _int(value.get("pushes")),
        _int(value.get("polls")),
        tuple(
            c
            for c in (_saved_callback(x) for x in (callbacks if isinstance(callbacks, list) else ()))
            if c is not None
        )[-_MAX_CALLBACKS:],
    )


def _saved_callback(value: Any) -> SavedCallback | None:
    if not isinstance(value, dict):
        return None
    url, lease_until = _text(value.get("url")), _float(value.get("lease_until"))
    nonce = _text(value.get("nonce"))
    if url is None or lease_until is None or not nonce:
        return None
    return SavedCallback(url, lease_until, nonce)


def _recent(value: Any, limit: int = 1024) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value[-limit:] if isinstance(v, str) and 0 < len(v) <= 64)


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
    attempts = data.get("attempts")
    return SavedState(
        url=data["url"],
        etag=_text(data.get("etag")),
        last_modified=_text(data.get("last_modified")),
        sha256=_text(data.get("sha256")),
        failures=_int(data.get("failures")),
        change_interval=_float(data.get("change_interval")),
        last_change_at=_float(data.get("last_change_at")),
        next_due=_float(data.get("next_due")),
        saved_at=_float(data.get("saved_at")) or 0.0,
        instance=_text(data.get("instance")),
        attempts=tuple(
            a for a in (_attempt(x) for x in (attempts if isinstance(attempts, list) else ())) if a
        ),
        websub=_subscription(data.get("websub")),
        recent=_recent(data.get("recent")),
    )
