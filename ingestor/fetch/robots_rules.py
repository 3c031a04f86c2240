"""What a robots.txt fetch means for an origin's article pages (RFC 9309), as plain data.

The rules themselves are read by protego (a maintained parser; its wildcard matching is
linear, no regex built from the file); this module decides what each kind of answer means
and for how long, so that the cache (``robots``) only does I/O:

* 2xx: the file's rules, for ``full_text.robots_ttl``; only its first 500 KiB are parsed
  (RFC 9309 asks for at least that much; the rest of a bigger file is ignored);
* 4xx (the file is "unavailable"): no rules, every page allowed, for ``robots_ttl``;
* 5xx, 429, a timeout, a broken connection, a file too big to read: "unreachable", so every
  page is disallowed *for now* (fail closed, RFC 9309 2.3.1.4) and the file is asked for
  again after a short expiry; the entry is retried like a transient failure, and falls back
  to the feed's text at its deadline;
* refused by the private-network guard: the page would be too, so the entry falls back now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from protego import Protego

from ingestor.fetch.outcome import Outcome

#: the most of a robots.txt that is read (a bigger one is "unreachable": fail closed)
BODY_CAP = 512 * 1024
#: the most of it that is parsed
PARSE_BYTES = 500 * 1024
#: how long an unreachable robots.txt is trusted to stay unreachable
RETRY_TTL = 60.0
DEFAULT_TOKEN = "news-ingestor"

Verdict = Literal["allowed", "disallowed", "unreachable", "blocked"]


def user_agent_token(user_agent: str | None) -> str:
    """The product token robots.txt groups are matched against: the User-Agent's first word up to
    its ``/`` (``news-ingestor/0.1 (+https://...)`` -> ``news-ingestor``), lower-cased; only the
    letters, digits, ``-`` and ``_`` RFC 9309 allows in it."""
    token = []
    for char in (user_agent or "").strip()[:128]:
        if char.isascii() and (char.isalnum() or char in "-_"):
            token.append(char)
        else:
            break
    return "".join(token).lower() or DEFAULT_TOKEN


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """One origin's robots.txt as last fetched: its rules (or none), until ``expires_at``."""

    kind: Literal["rules", "allow_all", "unreachable", "blocked"]
    expires_at: float
    reason: str = ""
    parser: Protego | None = None

    def check(self, url: str, token: str) -> Verdict:
        if self.kind == "allow_all":
            return "allowed"
        if self.kind == "unreachable":
            return "unreachable"
        if self.kind == "blocked":
            return "blocked"
        assert self.parser is not None
        return "allowed" if self.parser.can_fetch(url, token) else "disallowed"


def parse_rules(body: bytes) -> Protego:
    """The rules of (the first ``PARSE_BYTES`` of) a robots.txt, cut at a line end."""
    head = body[:PARSE_BYTES]
    if len(body) > PARSE_BYTES:
        cut = head.rfind(b"\n")
        head = head[: cut + 1] if cut >= 0 else b""
    return Protego.parse(head.decode("utf-8", errors="replace"))


def from_fetch(
    outcome: Outcome,
    status: int | None,
    body: bytes | None,
    now: float,
    ttl: float,
    *,
    reason: str | None = None,
    retry_ttl: float = RETRY_TTL,
) -> RobotsRules:
    """What a robots.txt fetch (all its redirects followed) means, and until when; ``reason`` is
    the fetcher's (it tells an empty file from a bot wall, both ``not_a_feed``)."""
    short = now + min(ttl, retry_ttl)
    if outcome is Outcome.OK and body is not None:
        return RobotsRules("rules", now + ttl, "ok", parse_rules(body))
    if outcome is Outcome.NOT_A_FEED and reason == "empty body":
        return RobotsRules("allow_all", now + ttl, "empty")  # an empty robots.txt: no rules
    if outcome is Outcome.HTTP_4XX:
        return RobotsRules("allow_all", now + ttl, f"http_{status}" if status else "http_4xx")
    if outcome is Outcome.BLOCKED:
        return RobotsRules("blocked", short, "blocked")
    if outcome is Outcome.HTTP_429:
        return RobotsRules("unreachable", short, "http_429")
    return RobotsRules("unreachable", short, outcome.value)
