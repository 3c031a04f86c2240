"""robots.txt per origin, cached with an expiry, fetched through the stage's own ``Fetcher``.

The fetch goes through the same client as feeds and pages (the private-network guard, the
timeouts, the User-Agent), with a small body cap (``robots_rules.BODY_CAP``).  Requests for one
origin while its file is being fetched share that one fetch, so a burst of 200 entries from
one site asks for its robots.txt once.  What each answer means is decided in
``robots_rules``; the number of origins kept is capped (the soonest to expire go first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from yarl import URL

from ingestor.config import FeedConfig
from ingestor.fetch.http import Fetcher
from ingestor.fetch.robots_rules import (
    BODY_CAP,
    RETRY_TTL,
    RobotsRules,
    Verdict,
    from_fetch,
    user_agent_token,
)

log = structlog.get_logger("ingestor.fetch")

MAX_ORIGINS = 10_000

Origin = tuple[str, str, int | None]


def origin(url: str) -> Origin:
    parsed = URL(url)
    return (parsed.scheme.lower(), (parsed.host or "").lower().rstrip("."), parsed.explicit_port)


def robots_url(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_path("/robots.txt").with_query(None).with_fragment(None).with_user(None))


class RobotsCache:
    def __init__(
        self,
        fetcher: Fetcher,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
        max_origins: int = MAX_ORIGINS,
    ) -> None:
        self._fetcher = fetcher
        self._ttl = ttl
        self._clock = clock
        self._max = max_origins
        self._rules: dict[Origin, RobotsRules] = {}
        self._fetching: dict[Origin, asyncio.Task[RobotsRules]] = {}
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._rules)

    async def check(self, url: str, feed_id: str, user_agent: str) -> tuple[Verdict, str]:
        """Whether ``url`` may be fetched by ``user_agent`` (its product token), and why not."""
        key = origin(url)
        rules = self._rules.get(key)
        if rules is None or rules.expires_at <= self._clock():
            task = self._fetching.get(key)
            if task is None:
                task = asyncio.create_task(self._fetch(key, url, feed_id, user_agent), name="robots")
                self._fetching[key] = task
                task.add_done_callback(self._fetched(key))
            # shielded: one waiter cancelled (its partition revoked) must not cancel the others'
            rules = await asyncio.shield(task)
        return rules.check(url, user_agent_token(user_agent)), rules.reason

    def _fetched(self, key: Origin) -> Callable[[asyncio.Task[RobotsRules]], None]:
        def forget(task: asyncio.Task[RobotsRules]) -> None:
            if self._fetching.get(key) is task:
                del self._fetching[key]

        return forget

    async def _fetch(self, key: Origin, url: str, feed_id: str, user_agent: str) -> RobotsRules:
        self.fetches += 1
        target = robots_url(url)
        feed = FeedConfig.model_construct(id=feed_id, url=target, format="text", user_agent=user_agent)
        try:
            result = await self._fetcher.fetch(feed, max_bytes=BODY_CAP)
        except Exception as exc:  # a bug, never a server's doing: unreachable for now, logged
            log.exception("robots_fetch_failed", stage="fetch", feed=feed_id, url=target)
            return RobotsRules("unreachable", self._clock() + RETRY_TTL, type(exc).__name__)
        rules = from_fetch(
            result.outcome, result.status, result.body, self._clock(), self._ttl, reason=result.reason
        )
        self._keep(key, rules)
        log.info(
            "robots_fetched",
            stage="fetch",
            feed=feed_id,
            url=target,
            status=result.status,
            outcome=rules.kind,
            reason=rules.reason,
            duration_ms=round(result.duration_ms, 1),
        )
        return rules

    def _keep(self, key: Origin, rules: RobotsRules) -> None:
        self._rules[key] = rules
        if len(self._rules) <= self._max:
            return
        now = self._clock()
        for stale in [k for k, r in self._rules.items() if r.expires_at <= now]:
            del self._rules[stale]
        while len(self._rules) > self._max:
            del self._rules[min(self._rules, key=lambda k: self._rules[k].expires_at)]
