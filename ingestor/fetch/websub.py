"""WebSub subscriber: subscribe to the hubs feeds name, confirm the hubs' verification
requests, accept content pushes, renew leases before they run out.

One small aiohttp listener per fetcher (``fetch.websub.listen``) serves the callback
``<fetch.websub.callback_url>/<feed id>``; in a sharded deployment each instance has its
own callback URL, so a hub pushes a feed to the instance that owns it.  A push is handed to
the fetch stage as a fetch result (it produces it to news.raw, deduplicated by body hash)
and acknowledged only once the broker has it, so the hub's own retries cover a broker
outage.  Polling goes on as a slow fallback; per hub we count what arrived by push and
what only polling found, which is how an operator sees a hub that silently stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
import structlog
from aiohttp import web
from yarl import URL

from ingestor.config import FetchConfig
from ingestor.fetch import guard
from ingestor.fetch.state import SubscriptionState
from ingestor.fetch.websub_protocol import feed_secret, renew_delay, signature_ok, verification_ok

log = structlog.get_logger("ingestor.fetch")

PushVerdict = Literal["new", "unchanged", "unknown", "failed"]
PushHandler = Callable[[str, bytes, str | None], Awaitable[PushVerdict]]
Status = Literal["subscribing", "active", "denied", "failed", "unsubscribing"]

RETRY_FIRST_S = 5.0
RETRY_MAX_S = 3600.0


@dataclass(slots=True)
class Subscription:
    feed_id: str
    hub: str
    topic: str
    status: Status = "subscribing"
    pending: str | None = None  # the mode we asked the hub for and expect it to verify
    lease_until: float | None = None
    pushes: int = 0
    polls: int = 0
    rejected: int = 0
    error: str | None = None
    retry_in: float = RETRY_FIRST_S
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass(frozen=True, slots=True)
class HubStats:
    subscriptions: int
    active: int
    pushes: int
    polls: int
    rejected: int


class WebSubscriber:
    def __init__(self, config: FetchConfig, on_push: PushHandler) -> None:
        websub = config.websub
        if not websub.callback_url:
            raise ValueError("fetch.websub.callback_url is not set")
        self._fetch_config = config
        self._config = websub
        self._callback_base = websub.callback_url.rstrip("/")
        self._on_push = on_push
        self._subs: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self._fetch_config
        connector = aiohttp.TCPConnector(  # hubs are servers on the internet: the same guard as feeds
            limit=20,
            socket_factory=guard.socket_factory(
                allow_private=cfg.allow_private_networks, allowed=guard.parse_networks(cfg.allowed_networks)
            ),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=cfg.total_timeout, connect=cfg.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": cfg.user_agent},
        )
        app = web.Application(client_max_size=cfg.max_body_bytes)
        route = URL(self._callback_base).path.rstrip("/") + "/{feed_id}"
        app.router.add_get(route, self._verify)
        app.router.add_post(route, self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, _, port = self._config.listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]") or "127.0.0.1", int(port))
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        log.info(
            "websub_listening",
            stage="fetch",
            listen=self._config.listen,
            port=self.port,
            callback=self._callback_base,
        )

    async def stop(self) -> None:
        for sub in self._subs.values():
            sub.cancel_timer()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- what the fetch stage asks ----------------------------------------------------

    def callback_for(self, feed_id: str) -> str:
        return f"{self._callback_base}/{feed_id}"

    def ensure(
        self, feed_id: str, hub: str, topic: str, *, restored: SubscriptionState | None = None
    ) -> None:
        """Subscribe (again) unless a subscription to this hub and topic is active or under way."""
        sub = self._subs.get(feed_id)
        if sub is not None and sub.hub == hub and sub.topic == topic and sub.status != "unsubscribing":
            return
        if sub is not None:
            sub.cancel_timer()
        fresh = Subscription(feed_id, hub, topic)
        if restored is not None and restored.hub == hub:
            fresh.pushes, fresh.polls = restored.pushes, restored.polls
        self._subs[feed_id] = fresh
        self._spawn(self._subscribe(fresh, "subscribe"))

    def forget(self, feed_id: str) -> None:
        """The feed is no longer ours (removed, or handed to another fetcher): unsubscribe."""
        sub = self._subs.get(feed_id)
        if sub is None:
            return
        sub.cancel_timer()
        if sub.status in ("active", "subscribing"):
            sub.status = "unsubscribing"
            self._spawn(self._subscribe(sub, "unsubscribe"))
        else:
            del self._subs[feed_id]

    def active(self, feed_id: str) -> bool:
        sub = self._subs.get(feed_id)
        return (
            sub is not None
            and sub.status == "active"
            and (sub.lease_until is None or sub.lease_until > time.time())
        )

    def note_poll_change(self, feed_id: str) -> None:
        """A poll found a new body while a push subscription was active: the hub missed it."""
        sub = self._subs.get(feed_id)
        if sub is not None and sub.status == "active":
            sub.polls += 1

    def snapshot(self, feed_id: str) -> SubscriptionState | None:
        sub = self._subs.get(feed_id)
        if sub is None or sub.status == "unsubscribing":
            return None
        return SubscriptionState(sub.hub, sub.topic, sub.lease_until, sub.pushes, sub.polls)

    def status_of(self, feed_id: str) -> dict[str, object] | None:
        sub = self._subs.get(feed_id)
        if sub is None:
            return None
        return {
            "hub": sub.hub,
            "topic": sub.topic,
            "status": sub.status,
            "lease_until": sub.lease_until,
            "pushes": sub.pushes,
            "polls": sub.polls,
            "rejected": sub.rejected,
            "error": sub.error,
        }

    def hubs(self) -> dict[str, HubStats]:
        grouped: dict[str, list[Subscription]] = {}
        for sub in self._subs.values():
            grouped.setdefault(sub.hub, []).append(sub)
        return {
            hub: HubStats(
                subscriptions=len(subs),
                active=sum(1 for s in subs if s.status == "active"),
                pushes=sum(s.pushes for s in subs),
                polls=sum(s.polls for s in subs),
                rejected=sum(s.rejected for s in subs),
            )
            for hub, subs in grouped.items()
        }

    # --- talking to hubs --------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, sub: Subscription, delay: float, mode: str) -> None:
        sub.cancel_timer()
        loop = asyncio.get_running_loop()
        sub.timer = loop.call_later(delay, lambda: self._spawn(self._subscribe(sub, mode)))

    async def _subscribe(self, sub: Subscription, mode: str) -> None:
        if self._subs.get(sub.feed_id) is not sub or self._session is None:
            return
        sub.pending = mode
        form = {
            "hub.mode": mode,
            "hub.topic": sub.topic,
            "hub.callback": self.callback_for(sub.feed_id),
        }
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self._config.lease))
            if self._config.secret:
                form["hub.secret"] = feed_secret(self._config.secret, sub.feed_id)
        try:
            async with self._session.post(sub.hub, data=form, allow_redirects=False) as response:
                text = (await response.content.read(2048)).decode("utf-8", "replace")
                if not 200 <= response.status < 300:
                    raise RuntimeError(f"hub answered {response.status}: {text[:200]}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(sub, mode, f"{type(exc).__name__}: {exc}")
            return
        log.info("websub_requested", stage="fetch", feed=sub.feed_id, hub=sub.hub, mode=mode)
        if sub.pending == mode:  # not verified yet (some hubs verify before answering): ask again
            self._later(sub, self._config.verify_timeout, mode)  # if the verification never comes

    def _failed(self, sub: Subscription, mode: str, error: str) -> None:
        sub.error = error
        if mode == "unsubscribe":
            self._subs.pop(sub.feed_id, None)
            log.warning(
                "websub_unsubscribe_failed", stage="fetch", feed=sub.feed_id, hub=sub.hub, error=error
            )
            return
        if sub.status != "active" or not self.active(sub.feed_id):
            sub.status = "failed"
        log.warning(
            "websub_subscribe_failed",
            stage="fetch",
            feed=sub.feed_id,
            hub=sub.hub,
            error=error,
            retry_in_s=sub.retry_in,
        )
        self._later(sub, sub.retry_in, "subscribe")
        sub.retry_in = min(RETRY_MAX_S, sub.retry_in * 2)

    # --- the callback -----------------------------------------------------------------

    async def _verify(self, request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        query = request.query
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        sub = self._subs.get(feed_id)
        if mode == "denied":
            if sub is not None and topic == sub.topic:
                sub.status, sub.pending = "denied", None
                sub.error = query.get("hub.reason") or "denied by the hub"
                log.warning("websub_denied", stage="fetch", feed=feed_id, hub=sub.hub, reason=sub.error)
                self._later(sub, RETRY_MAX_S, "subscribe")
            return web.Response(text="")
        expected_mode = sub.pending if sub is not None else None
        if sub is None or not verification_ok(
            mode=mode, topic=topic, expected_mode=expected_mode, expected_topic=sub.topic
        ):
            log.warning("websub_verification_refused", stage="fetch", feed=feed_id, mode=mode, topic=topic)
            return web.Response(status=404, text="no such subscription request")
        challenge = query.get("hub.challenge", "")
        sub.pending = None
        sub.cancel_timer()
        if mode == "unsubscribe":
            self._subs.pop(feed_id, None)
            log.info("websub_unsubscribed", stage="fetch", feed=feed_id, hub=sub.hub)
            return web.Response(text=challenge, content_type="text/plain")
        try:
            lease = float(query.get("hub.lease_seconds", ""))
        except ValueError:
            lease = self._config.lease
        lease = max(1.0, lease)
        sub.status, sub.error, sub.retry_in = "active", None, RETRY_FIRST_S
        sub.lease_until = time.time() + lease
        self._later(sub, renew_delay(lease, self._config.renew_before), "subscribe")
        log.info("websub_subscribed", stage="fetch", feed=feed_id, hub=sub.hub, lease_s=lease)
        return web.Response(text=challenge, content_type="text/plain")

    async def _push(self, request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        sub = self._subs.get(feed_id)
        if sub is None or sub.status == "unsubscribing":
            return web.Response(status=410, text="not subscribed")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        if self._config.secret and not signature_ok(
            feed_secret(self._config.secret, feed_id), body, request.headers.get("X-Hub-Signature")
        ):
            sub.rejected += 1
            log.warning(
                "websub_push_rejected", stage="fetch", feed=feed_id, hub=sub.hub, reason="bad signature"
            )
            return web.Response(status=403, text="bad signature")
        verdict = await self._on_push(feed_id, body, request.headers.get("Content-Type"))
        if verdict == "unknown":
            return web.Response(status=410, text="not subscribed")
        if verdict == "failed":
            return web.Response(status=503, text="try again")
        if verdict == "new":
            sub.pushes += 1
        return web.Response(status=202 if verdict == "new" else 200)
