"""WebSub subscriber: subscribe to the hubs feeds name, confirm the hubs' verification
requests, accept content pushes, renew leases before they run out.

One small aiohttp listener per fetcher (``fetch.websub.listen``) serves the callbacks
``<fetch.websub.callback_url>/<feed id>/<token>``; in a sharded deployment each instance has
its own callback URL, so a hub pushes a feed to the instance that owns it.  The callback is
a public URL, so everything arriving there is treated as hostile until proven otherwise
(the rules are in ``websub_protocol``; the threat model in docs/websub.md):

* every subscribe request has its own random ``token`` (the last path segment) and its own
  ``hub.secret``; a verification GET is confirmed only for a token we wait on, with the mode
  and topic we asked for, and a lease clamped to ``max_lease``;
* a push is content only at a verified, unexpired callback and with a valid signature made
  with that callback's secret; otherwise it is dropped and counted (a bad signature is still
  answered 202, as the spec allows, so the answer tells a prober nothing);
* a renewal subscribes a new callback; once the hub verified it, the older callbacks are
  unsubscribed (their pushes are accepted until then: the hub may still be using them).

An accepted push is handed to the fetch stage as a fetch result (it drops a body seen among
the feed's recent ones, and produces the rest to news.raw) and acknowledged only once the
broker has it, so the hub's own retries cover a broker outage.  Polling goes on as a slow
fallback; per hub we count what arrived by push and what only polling found, which is how an
operator sees a hub that silently stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import aiohttp
import structlog
from yarl import URL

from ingestor.config import FetchConfig
from ingestor.fetch import guard
from ingestor.fetch.state import SavedCallback, SubscriptionState
from ingestor.fetch.websub_protocol import (
    PendingRequest,
    new_nonce,
    new_token,
    parse_lease,
    renew_delay,
    signature_ok,
    subscription_secret,
    token_ok,
    verification_ok,
)

if TYPE_CHECKING:  # the callback listener's server side is imported when it starts (see ``start``)
    from aiohttp import web

log = structlog.get_logger("ingestor.fetch")

PushVerdict = Literal["new", "unchanged", "replayed", "unknown", "failed"]
PushHandler = Callable[[str, bytes, str | None], Awaitable[PushVerdict]]
Status = Literal["subscribing", "active", "denied", "failed", "unsubscribing"]

RETRY_FIRST_S = 5.0
RETRY_MAX_S = 3600.0


@dataclass(slots=True)
class Callback:
    """A callback the hub verified: pushes arriving there are checked with its ``secret``."""

    token: str
    nonce: str
    secret: str
    lease_until: float


@dataclass(slots=True)
class Subscription:
    feed_id: str
    hub: str
    topic: str
    status: Status = "subscribing"
    pending: dict[str, PendingRequest] = field(default_factory=dict)  # token -> what we asked for
    callbacks: dict[str, Callback] = field(default_factory=dict)  # token -> verified callback
    pushes: int = 0
    polls: int = 0
    rejected: int = 0  # pushes dropped: no live subscription at that callback, or a bad signature
    replayed: int = 0  # signed pushes of a body among the feed's recent ones, not the latest
    error: str | None = None
    retry_in: float = RETRY_FIRST_S
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def live(self, now: float) -> list[Callback]:
        """The verified callbacks whose lease has not run out (expired ones are dropped)."""
        for token in [t for t, c in self.callbacks.items() if c.lease_until <= now]:
            del self.callbacks[token]
        return list(self.callbacks.values())


@dataclass(frozen=True, slots=True)
class HubStats:
    subscriptions: int
    active: int
    pushes: int
    polls: int
    rejected: int
    replayed: int = 0


class WebSubscriber:
    def __init__(self, config: FetchConfig, on_push: PushHandler) -> None:
        websub = config.websub
        if not websub.callback_url:
            raise ValueError("fetch.websub.callback_url is not set")
        self._fetch_config = config
        self._config = websub
        self._key = websub.secret or None
        self._callback_base = websub.callback_url.rstrip("/")
        self._on_push = on_push
        self._subs: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._unsubscribed = asyncio.Event()  # set whenever a hub confirmed an unsubscribe
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
        # here, not at the top: aiohttp's server side (1.4 MiB resident) is loaded only by a
        # fetcher that takes callbacks, which is one with websub.callback_url, at its start
        from aiohttp import web

        app = web.Application(client_max_size=cfg.max_body_bytes)
        base = URL(self._callback_base).path.rstrip("/")
        app.router.add_get(base + "/{feed_id}/{token}", self._verify)
        app.router.add_post(base + "/{feed_id}/{token}", self._push)
        app.router.add_route("*", base + "/{feed_id}", self._gone)  # callbacks of older versions
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
        """Stop renewing; with ``unsubscribe_on_shutdown``, first ask every hub to stop pushing
        and wait (at most ``unsubscribe_timeout``) for their confirmations, which arrive on the
        listener, so it is closed only afterwards."""
        for sub in self._subs.values():
            sub.cancel_timer()
        if self._config.unsubscribe_on_shutdown and self._session is not None and self._runner is not None:
            await self._unsubscribe_all(self._config.unsubscribe_timeout)
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

    async def _unsubscribe_all(self, timeout: float) -> None:
        now = time.time()
        asked = 0
        for sub in self._subs.values():
            sub.status, sub.pending = "unsubscribing", {}
            for callback in sub.live(now):
                self._ask_unsubscribe(sub, callback.token)
                asked += 1
        if not asked:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while any(sub.pending for sub in self._subs.values()):
                    self._unsubscribed.clear()
                    await self._unsubscribed.wait()
        left = sum(len(sub.pending) for sub in self._subs.values())
        log.info("websub_unsubscribed_on_shutdown", stage="fetch", asked=asked, unconfirmed=left)

    # --- what the fetch stage asks ----------------------------------------------------

    def callback_for(self, feed_id: str, token: str) -> str:
        return f"{self._callback_base}/{feed_id}/{token}"

    def _token_of(self, feed_id: str, url: str) -> str | None:
        """The token of one of our own callback URLs for this feed; None for anyone else's (a
        previous owner with another callback base)."""
        prefix = f"{self._callback_base}/{feed_id}/"
        token = url[len(prefix) :] if url.startswith(prefix) else ""
        return token if token_ok(token) else None

    def ensure(
        self, feed_id: str, hub: str, topic: str, *, restored: SubscriptionState | None = None
    ) -> None:
        """Subscribe (again) unless a subscription to this hub and topic is active or under way.

        ``restored`` is what the fetch-state topic remembers: its counts, and the callbacks a
        previous run of this very instance had verified (same callback base), which keep
        accepting the hub's pushes until the new subscription is verified.
        """
        sub = self._subs.get(feed_id)
        if sub is not None and sub.hub == hub and sub.topic == topic and sub.status != "unsubscribing":
            return
        if sub is not None:
            sub.cancel_timer()
        fresh = Subscription(feed_id, hub, topic)
        if restored is not None and restored.hub == hub:
            fresh.pushes, fresh.polls = restored.pushes, restored.polls
            if restored.topic == topic:
                self._adopt(fresh, restored.callbacks)
        self._subs[feed_id] = fresh
        self._spawn(self._subscribe(fresh))

    def _adopt(self, sub: Subscription, saved: tuple[SavedCallback, ...]) -> None:
        now = time.time()
        for callback in saved:
            token = self._token_of(sub.feed_id, callback.url)
            if token is None or callback.lease_until <= now:
                continue
            if not self._key:  # derived from a key this process does not have: pushes uncheckable
                continue
            lease_until = min(callback.lease_until, now + self._max_lease)
            secret = subscription_secret(self._key, sub.feed_id, callback.nonce)
            sub.callbacks[token] = Callback(token, callback.nonce, secret, lease_until)
        if sub.callbacks:
            sub.status = "active"

    @property
    def _max_lease(self) -> float:
        return self._config.max_lease

    def forget(self, feed_id: str) -> None:
        """The feed is no longer ours (removed, or handed to another fetcher): unsubscribe."""
        sub = self._subs.get(feed_id)
        if sub is None:
            return
        sub.cancel_timer()
        sub.status = "unsubscribing"
        sub.pending = {t: p for t, p in sub.pending.items() if p.mode == "unsubscribe"}
        live = sub.live(time.time())
        if not live and not sub.pending:
            del self._subs[feed_id]
            return
        for callback in live:
            if callback.token not in sub.pending:
                self._ask_unsubscribe(sub, callback.token)
        # whatever the hubs answer, the subscription is gone from here after the verify timeout
        sub.timer = asyncio.get_running_loop().call_later(
            self._config.verify_timeout, lambda: self._drop(sub)
        )

    def _drop(self, sub: Subscription) -> None:
        if self._subs.get(sub.feed_id) is sub:
            del self._subs[sub.feed_id]

    def subscribed(self, feed_id: str) -> bool:
        """Whether the feed has a subscription (in any state): its polls race with pushes."""
        return feed_id in self._subs

    def active(self, feed_id: str) -> bool:
        sub = self._subs.get(feed_id)
        return sub is not None and sub.status == "active" and bool(sub.live(time.time()))

    def note_poll_change(self, feed_id: str) -> None:
        """A poll found a new body while a push subscription was active: the hub missed it."""
        sub = self._subs.get(feed_id)
        if sub is not None and sub.status == "active":
            sub.polls += 1

    def snapshot(self, feed_id: str) -> SubscriptionState | None:
        """What the fetch-state record keeps: never a secret.  With an operator key, the verified
        callbacks with the nonces their secrets derive from; without one, no callbacks (their
        secrets are random and live only in this process; a restart subscribes afresh)."""
        sub = self._subs.get(feed_id)
        if sub is None or sub.status == "unsubscribing":
            return None
        live = sub.live(time.time())
        saved = tuple(
            SavedCallback(self.callback_for(feed_id, c.token), round(c.lease_until, 3), c.nonce)
            for c in sorted(live, key=lambda c: c.lease_until)
            if self._key
        )
        lease_until = max((c.lease_until for c in live), default=None)
        return SubscriptionState(
            sub.hub,
            sub.topic,
            round(lease_until, 3) if lease_until is not None else None,
            sub.pushes,
            sub.polls,
            saved,
        )

    def status_of(self, feed_id: str) -> dict[str, object] | None:
        sub = self._subs.get(feed_id)
        if sub is None:
            return None
        live = sub.live(time.time())
        return {
            "hub": sub.hub,
            "topic": sub.topic,
            "status": sub.status,
            "lease_until": max((c.lease_until for c in live), default=None),
            "callbacks": len(live),
            "pending": len(sub.pending),
            "pushes": sub.pushes,
            "polls": sub.polls,
            "rejected": sub.rejected,
            "replayed": sub.replayed,
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
                replayed=sum(s.replayed for s in subs),
            )
            for hub, subs in grouped.items()
        }

    # --- talking to hubs --------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, sub: Subscription, delay: float) -> None:
        """(Re)subscribe after ``delay``: a renewal, or a retry."""
        sub.cancel_timer()
        loop = asyncio.get_running_loop()
        sub.timer = loop.call_later(delay, lambda: self._spawn(self._subscribe(sub)))

    async def _request(self, sub: Subscription, form: dict[str, str]) -> None:
        assert self._session is not None
        async with self._session.post(sub.hub, data=form, allow_redirects=False) as response:
            text = (await response.content.read(2048)).decode("utf-8", "replace")
            if not 200 <= response.status < 300:
                raise RuntimeError(f"hub answered {response.status}: {text[:200]}")

    async def _subscribe(self, sub: Subscription) -> None:
        """One subscribe request, under a fresh callback token and a fresh secret.  An earlier
        request still waiting for its verification is abandoned: its late verification gets a
        404, so the hub never activates two callbacks for one request of ours."""
        if self._subs.get(sub.feed_id) is not sub or self._session is None or sub.status == "unsubscribing":
            return
        token, nonce = new_token(), new_nonce()
        now = time.time()
        sub.pending = {  # abandoned: earlier subscribes, and unsubscribes the hub never confirmed
            t: p
            for t, p in sub.pending.items()
            if p.mode == "unsubscribe" and now - p.sent_at < self._config.verify_timeout
        }
        sub.pending[token] = PendingRequest("subscribe", sub.topic, now, nonce)
        form = {
            "hub.mode": "subscribe",
            "hub.topic": sub.topic,
            "hub.callback": self.callback_for(sub.feed_id, token),
            "hub.lease_seconds": str(max(1, int(min(self._config.lease, self._max_lease)))),
            "hub.secret": subscription_secret(self._key, sub.feed_id, nonce),
        }
        try:
            await self._request(sub, form)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            sub.pending.pop(token, None)
            self._failed(sub, f"{type(exc).__name__}: {exc}")
            return
        log.info("websub_requested", stage="fetch", feed=sub.feed_id, hub=sub.hub, mode="subscribe")
        if token in sub.pending:  # not verified yet (some hubs verify before answering): ask again
            self._later(sub, self._config.verify_timeout)  # if the verification never comes

    def _ask_unsubscribe(self, sub: Subscription, token: str) -> None:
        """Ask the hub to stop pushing to one callback (retired by a renewal, or the feed left).
        Pending from now on, since some hubs verify before they answer the request."""
        sub.pending[token] = PendingRequest("unsubscribe", sub.topic, time.time())
        self._spawn(self._unsubscribe(sub, token))

    async def _unsubscribe(self, sub: Subscription, token: str) -> None:
        if self._session is None:
            sub.pending.pop(token, None)
            return
        form = {
            "hub.mode": "unsubscribe",
            "hub.topic": sub.topic,
            "hub.callback": self.callback_for(sub.feed_id, token),
        }
        try:
            await self._request(sub, form)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the callback's lease runs out at the hub anyway
            if sub.pending.pop(token, None) is not None:
                self._unsubscribed.set()
            log.warning(
                "websub_unsubscribe_failed",
                stage="fetch",
                feed=sub.feed_id,
                hub=sub.hub,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        log.info("websub_requested", stage="fetch", feed=sub.feed_id, hub=sub.hub, mode="unsubscribe")

    def _failed(self, sub: Subscription, error: str) -> None:
        sub.error = error
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
        self._later(sub, sub.retry_in)
        sub.retry_in = min(RETRY_MAX_S, sub.retry_in * 2)

    # --- the callback -----------------------------------------------------------------

    def _refuse_verification(
        self, feed_id: str, mode: str | None, topic: str | None, reason: str
    ) -> web.Response:
        from aiohttp import web

        log.warning(
            "websub_verification_refused", stage="fetch", feed=feed_id, mode=mode, topic=topic, reason=reason
        )
        return web.Response(status=404, text="no such subscription request")

    async def _verify(self, request: web.Request) -> web.Response:
        """A hub's verification of intent (or denial).  Nothing changes unless it names a
        request we sent and are still waiting for (or, for a denial, a callback we hold)."""
        from aiohttp import web

        feed_id, token = request.match_info["feed_id"], request.match_info["token"]
        query = request.query
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        sub = self._subs.get(feed_id)
        pending = sub.pending.get(token) if sub is not None else None
        if sub is None:
            return self._refuse_verification(feed_id, mode, topic, "no subscription")
        if mode == "denied":
            return self._denied(sub, token, pending, topic, query.get("hub.reason"))
        if not verification_ok(mode=mode, topic=topic, pending=pending):
            return self._refuse_verification(feed_id, mode, topic, "not a request of ours")
        assert pending is not None
        challenge = query.get("hub.challenge")
        if not challenge:
            return self._refuse_verification(feed_id, mode, topic, "no challenge")
        if pending.mode == "unsubscribe":
            del sub.pending[token]
            sub.callbacks.pop(token, None)
            self._unsubscribed.set()
            if sub.status == "unsubscribing" and not sub.pending and not sub.callbacks:
                sub.cancel_timer()
                self._drop(sub)
            log.info("websub_unsubscribed", stage="fetch", feed=feed_id, hub=sub.hub)
            return web.Response(text=challenge, content_type="text/plain")
        lease = parse_lease(
            query.get("hub.lease_seconds"), requested=self._config.lease, maximum=self._max_lease
        )
        if lease is None:
            return self._refuse_verification(feed_id, mode, topic, "bad lease")
        del sub.pending[token]
        nonce = pending.nonce or ""
        now = time.time()
        secret = subscription_secret(self._key, feed_id, nonce)
        sub.callbacks[token] = Callback(token, nonce, secret, now + lease)
        sub.status, sub.error, sub.retry_in = "active", None, RETRY_FIRST_S
        self._later(sub, renew_delay(lease, self._config.renew_before))
        for old in sub.live(now):  # retire what this one renews
            if old.token != token and old.token not in sub.pending:
                self._ask_unsubscribe(sub, old.token)
        log.info("websub_subscribed", stage="fetch", feed=feed_id, hub=sub.hub, lease_s=lease)
        return web.Response(text=challenge, content_type="text/plain")

    def _denied(
        self,
        sub: Subscription,
        token: str,
        pending: PendingRequest | None,
        topic: str | None,
        reason: str | None,
    ) -> web.Response:
        """A hub may deny a request, or revoke a subscription later; either only for a callback
        it knows, which a stranger does not (the token is random per request)."""
        from aiohttp import web

        ours = (pending is not None and pending.mode == "subscribe") or token in sub.callbacks
        if not ours or topic != sub.topic:
            return self._refuse_verification(sub.feed_id, "denied", topic, "not a request of ours")
        sub.pending.pop(token, None)
        sub.callbacks.pop(token, None)
        if not sub.live(time.time()) and sub.status != "unsubscribing":
            sub.status, sub.error = "denied", (reason or "denied by the hub")[:200]
            self._later(sub, RETRY_MAX_S)
        log.warning(
            "websub_denied", stage="fetch", feed=sub.feed_id, hub=sub.hub, reason=(reason or "")[:200]
        )
        return web.Response(text="")

    async def _gone(self, request: web.Request) -> web.Response:
        """A callback without a token: a subscription made by an older version. 410 tells the
        hub to drop it; a fresh subscription replaces it."""
        from aiohttp import web

        if request.method == "GET":
            return web.Response(status=404, text="no such subscription request")
        return web.Response(status=410, text="not subscribed")

    def _reject(self, sub: Subscription | None, feed_id: str, reason: str) -> None:
        if sub is not None:
            sub.rejected += 1
        log.warning(
            "websub_push_rejected", stage="fetch", feed=feed_id, hub=sub.hub if sub else None, reason=reason
        )

    async def _push(self, request: web.Request) -> web.Response:
        from aiohttp import web

        feed_id, token = request.match_info["feed_id"], request.match_info["token"]
        sub = self._subs.get(feed_id)
        callback = sub.callbacks.get(token) if sub is not None and sub.status != "unsubscribing" else None
        if sub is None or callback is None or callback.lease_until <= time.time():
            # nothing verified here (never, not yet, or no longer): not content, and 410 asks a
            # hub that still holds such a subscription to drop it
            self._reject(sub, feed_id, "no verified subscription at this callback")
            return web.Response(status=410, text="not subscribed")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        if not signature_ok(callback.secret, body, request.headers.get("X-Hub-Signature")):
            # dropped, but acknowledged like any push (WebSub 7.1.2): the answer must not tell a
            # prober whether a signature was right, and a hub with a wrong secret is in the logs
            self._reject(sub, feed_id, "missing or bad signature")
            return web.Response(status=202)
        verdict = await self._on_push(feed_id, body, request.headers.get("Content-Type"))
        if verdict == "unknown":
            return web.Response(status=410, text="not subscribed")
        if verdict == "failed":
            return web.Response(status=503, text="try again")
        if verdict == "new":
            sub.pushes += 1
            return web.Response(status=202)
        if verdict == "replayed":
            sub.replayed += 1
        return web.Response(status=200)
