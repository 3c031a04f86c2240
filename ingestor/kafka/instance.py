"""Static group membership: one stable ``group.instance.id`` per consumer-group member.

Why: a SIGKILLed member never leaves its group, so a restarted process with a new, dynamic
member id waits for the coordinator to give up on its dead predecessor (the session timeout)
before the group rebalances and lets it in: about 18 s on the embedded broker with a 10 s
session. A static member rejoins under the dead one's identity and gets its partitions back
at once. Kafka (2.3+, JoinGroup v5) and Tansu 0.6 both support it; what each does is in
docs/architecture.md (Recovery after a crash).

The one rule: **two live members of a group must never share an instance id.** Kafka fences
the older of two such members, but Tansu 0.6 does not: it hands both the same member id and
the same assignment, and both pass the membership check, so dedup would publish twice. The id
is therefore ``<instance name>-<role>-<slot>``: the name is the host's (``kafka.instance_name``,
else the host name), and the slot is the lowest one no other process on this host holds, held
with an exclusive file lock for as long as the member lives. A restarted process takes the
slot its dead predecessor's kernel released; a second daemon on the same host (or a fetch
process next to another) takes the next one. Across hosts the names must differ, which host
names do.

Without a lock directory to write to, the member is dynamic (and says so once): slower after a
crash, never unsafe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ingestor.config import KafkaConfig
from ingestor.kafka.embedded import default_state_dir

log = structlog.get_logger("ingestor.kafka")

#: slots tried per group and role; more members than this on one host fall back to dynamic
MAX_SLOTS = 64
#: Shorter sessions join as dynamic members: the embedded broker holds a static member's join
#: and sync for 3 s each, and with short sessions it drops members in the middle of that, so a
#: static group of several members keeps rebalancing (seen with 4 s and 6 s; 8 s and 10 s still).
MIN_STATIC_SESSION_MS = 8000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_reported: set[str] = set()


@dataclass
class StaticMember:
    """One claimed ``group.instance.id``; the claim lasts until ``release()`` or process exit."""

    instance_id: str
    group_id: str
    _fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None


def instance_name(config: KafkaConfig) -> str:
    """``kafka.instance_name`` or the host name, in the characters Kafka allows."""
    raw = config.instance_name or socket.gethostname() or "localhost"
    return _UNSAFE.sub("_", raw)[:100]


def lock_directory(config: KafkaConfig) -> Path:
    return config.embedded.state_dir or default_state_dir()


def claim(config: KafkaConfig, group_id: str, role: str) -> StaticMember | None:
    """A free static identity for a member of ``group_id`` on this host, or None (dynamic).

    None when ``kafka.static_membership`` is off, when no lock can be taken (logged once per
    reason), or when every slot is held.
    """
    if not config.static_membership:
        return None
    prefix = f"{instance_name(config)}-{_UNSAFE.sub('_', role)[:40]}"
    directory = lock_directory(config)
    group_key = hashlib.sha256(group_id.encode("utf-8")).hexdigest()[:16]
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for slot in range(MAX_SLOTS):
            instance_id = f"{prefix}-{slot}"
            fd = os.open(directory / f"member-{group_key}-{instance_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return StaticMember(instance_id, group_id, fd)
    except OSError as exc:
        _report("lock_failed", group_id, role, f"{type(exc).__name__}: {exc}", directory)
        return None
    _report("slots_exhausted", group_id, role, f"all {MAX_SLOTS} slots held", directory)
    return None


def static_session_ok(session_timeout_ms: int | None, member: StaticMember) -> bool:
    """Whether a member with this session may join as static (see MIN_STATIC_SESSION_MS)."""
    if session_timeout_ms is None or session_timeout_ms >= MIN_STATIC_SESSION_MS:
        return True
    _report(
        "short_session",
        member.group_id,
        member.instance_id,
        f"session {session_timeout_ms} ms < {MIN_STATIC_SESSION_MS} ms",
        Path("."),
    )
    return False


def _report(reason: str, group_id: str, role: str, error: str, directory: Path) -> None:
    if reason in _reported:
        return
    _reported.add(reason)
    log.warning(
        "static_membership_unavailable",
        group=group_id,
        role=role,
        reason=reason,
        error=error,
        directory=str(directory),
        hint="joining as a dynamic member: a restart waits for the old session to expire",
    )
