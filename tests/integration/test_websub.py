"""WebSub against a hub written here, all on 127.0.0.1: discovery, verification of intent,
signed pushes, lease renewal, the slow poll fallback, the per-hub counts, and every forgery
the callback must shrug off (unsigned, wrongly signed, replayed, pushed before verification,
forged verifications and denials, endless leases), before and after a restart."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ingestor import headers as hdr
from ingestor.config import Settings
from ingestor.fetch.http import Fetcher
from ingestor.fetch.service import FetchStage
from ingestor.fetch.websub import HubStats
from ingestor.fetch.websub_protocol import sign, token_ok
from ingestor.kafka import KafkaConnection, ensure_topics
from ingestor.kafka.embedded import free_port
from tests.conftest import make_settings
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_fetch_support import StaticResolver

pytestmark = pytest.mark.integration

KEY = "operator-key"


def atom(base: str, n: int) -> bytes:
    return (
        f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        f'<link rel="hub" href="{base}/hub"/><link rel="self" href="{base}/feed.xml"/>'
        f"<entry><id>urn:{n}</id><title>entry {n}</title></entry></feed>"
    ).encode()


@dataclass
class Hub:
    """A minimal WebSub hub and publisher: verifies every (un)subscription with a random
    challenge, grants the lease asked for (or ``lease_override``), and pushes signed content
    to the callbacks it verified.  ``held`` delays verifications until released."""

    requests: list[dict[str, str]] = field(default_factory=list)
    active: dict[str, dict[str, str]] = field(default_factory=dict)  # callback -> subscribe form
    verify_results: list[tuple[str, int, bool]] = field(default_factory=list)
    lease_override: str | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)
    feed_body: bytes = b""
    server: TestServer | None = None
    base: str = ""

    async def start(self) -> str:
        self.held.set()
        app = web.Application()
        app.router.add_post("/hub", self._hub)
        app.router.add_get("/feed.xml", self._feed)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.feed_body = atom(self.base, 1)
        return self.base

    @property
    def topic(self) -> str:
        return f"{self.base}/feed.xml"

    def subscribes(self) -> list[dict[str, str]]:
        return [f for f in self.requests if f["hub.mode"] == "subscribe"]

    async def _feed(self, request: web.Request) -> web.Response:
        return web.Response(body=self.feed_body, content_type="application/atom+xml")

    async def _hub(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        asyncio.get_running_loop().create_task(self._verify(form))
        return web.Response(status=202)

    async def _verify(self, form: dict[str, str]) -> None:
        await self.held.wait()
        challenge = secrets.token_hex(8)
        params = {"hub.mode": form["hub.mode"], "hub.topic": form["hub.topic"], "hub.challenge": challenge}
        if form["hub.mode"] == "subscribe":
            params["hub.lease_seconds"] = self.lease_override or form.get("hub.lease_seconds", "60")
        async with aiohttp.ClientSession() as session, session.get(form["hub.callback"], params=params) as r:
            ok = r.status == 200 and await r.text() == challenge
        self.verify_results.append((form["hub.mode"], r.status, ok))
        if ok and form["hub.mode"] == "subscribe":
            self.active[form["hub.callback"]] = form
        elif ok:
            self.active.pop(form["hub.callback"], None)

    async def push(
        self, callback: str, body: bytes, *, secret: str | None = None, signature: str | None = None
    ) -> int:
        """One content distribution request: signed with ``secret`` (default: the callback's own),
        or with a literal ``signature`` header ("" for none)."""
        headers = {"Content-Type": "application/atom+xml"}
        if signature is None:
            signature = sign(secret if secret is not None else self.active[callback]["hub.secret"], body)
        if signature:
            headers["X-Hub-Signature"] = signature
        async with (
            aiohttp.ClientSession() as session,
            session.post(callback, data=body, headers=headers) as r,
        ):
            return r.status

    async def publish(self, body: bytes, **kwargs: Any) -> list[int]:
        return [await self.push(callback, body, **kwargs) for callback in list(self.active)]


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    h = Hub()
    await h.start()
    yield h
    assert h.server is not None
    await h.server.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@dataclass
class Setup:
    settings: Settings
    connection: KafkaConnection
    callback: str  # the callback base: <callback>/<feed id>/<token>


async def setup(broker_address: str, hub: Hub, port: int | None = None, **websub: Any) -> Setup:
    port = port or free_port("127.0.0.1")
    callback = f"http://127.0.0.1:{port}/websub"
    options = {
        "callback_url": callback,
        "listen": f"127.0.0.1:{port}",
        "lease": 60,
        "poll_interval": 60,
        "verify_timeout": 5,
        **websub,
    }
    fetch: dict[str, Any] = {
        "sharding": False,
        "state_topic": f"ws-{uuid.uuid4().hex[:8]}",
        "min_interval": 0.05,
        "jitter": 0,
        "startup_spread": 0,
        "retries": 0,
        "websub": options,
    }
    settings = make_settings(
        broker_address, feeds=[{"id": "pushed", "url": hub.topic, "interval": 0.2}], fetch=fetch
    )
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    return Setup(settings, connection, callback)


async def started(s: Setup) -> FetchStage:
    stage = FetchStage(s.settings, s.connection, fetcher=Fetcher(s.settings.fetch, resolver=StaticResolver()))
    await stage.start()
    return stage


async def raw_bodies(broker_address: str, s: Setup, expect: int) -> list[tuple[str, bytes]]:
    records = await read_topic(broker_address, s.settings.topics.raw, expect=expect, settle=0.5)
    return [(hdr.as_dict(r.headers)[hdr.VIA], r.value) for r in sorted(records, key=lambda r: r.offset)]


def only_callback(hub: Hub) -> str:
    assert len(hub.active) == 1, hub.active
    return next(iter(hub.active))


async def test_push_subscription_end_to_end(broker_address: str, hub: Hub) -> None:
    s = await setup(broker_address, hub, secret=KEY, poll_interval=1.0)
    stage = await started(s)

    def stats() -> HubStats:
        return stage.health().websub[f"{hub.base}/hub"]

    try:
        # discovered from the first poll, subscribed under a fresh token, verified by the hub
        await until(lambda: len(hub.active) == 1)
        callback = only_callback(hub)
        form = hub.active[callback]
        prefix = f"{s.callback}/pushed/"
        assert callback.startswith(prefix) and token_ok(callback[len(prefix) :])
        assert form["hub.lease_seconds"] == "60"
        assert len(form["hub.secret"]) == 64 and KEY not in form["hub.secret"]
        await until(lambda: f"{hub.base}/hub" in stage.health().websub and stats().active == 1)
        # polling goes on, but only as the slow fallback
        polls = len(stage.feed_status("pushed").attempts)  # type: ignore[union-attr]
        await until(lambda: len(stage.feed_status("pushed").attempts) > polls)  # type: ignore[union-attr]
        last = stage.feed_status("pushed").attempts[-1]  # type: ignore[union-attr]
        assert (last.next_due - last.at).total_seconds() >= 0.95

        # a signed push of new content is produced once, via=push; the same body again is not
        assert await hub.push(callback, atom(hub.base, 2)) == 202
        assert await hub.push(callback, atom(hub.base, 2)) == 200
        # bad or missing signatures are dropped, and answered like any push (nothing to probe)
        assert await hub.push(callback, atom(hub.base, 3), secret="wrong") == 202
        assert await hub.push(callback, atom(hub.base, 3), secret=KEY) == 202  # the operator key is not it
        assert await hub.push(callback, atom(hub.base, 3), signature="") == 202
        assert await hub.push(callback, atom(hub.base, 3), signature="sha256=zz") == 202
        assert stats().rejected == 4
        secret = form["hub.secret"]
        assert (
            await hub.push(callback, atom(hub.base, 3), signature=sign(secret, atom(hub.base, 3), "sha1"))
            == 202
        )

        # content that only polling finds is counted against the hub
        hub.feed_body = atom(hub.base, 4)
        await until(lambda: stats().polls == 1, timeout=5)
        assert (stats().pushes, stats().polls, stats().rejected) == (2, 1, 4)

        status = stage.feed_status("pushed")
        assert status is not None and status.websub is not None and status.websub["status"] == "active"
        assert any(a.via == "push" for a in status.attempts)
    finally:
        await stage.stop()
    assert await raw_bodies(broker_address, s, expect=4) == [
        ("poll", atom(hub.base, 1)),
        ("push", atom(hub.base, 2)),
        ("push", atom(hub.base, 3)),
        ("poll", atom(hub.base, 4)),
    ]


async def test_renewal_retires_the_old_callback(broker_address: str, hub: Hub) -> None:
    s = await setup(broker_address, hub, secret=KEY, lease=2, renew_before=0.4)
    stage = await started(s)
    try:
        await until(lambda: len(hub.active) == 1)
        first = only_callback(hub)
        secret = hub.active[first]["hub.secret"]
        # the lease (2 s) is renewed before it runs out: a new callback with a new secret, and
        # once the hub verified it, the old callback is unsubscribed
        await until(lambda: len(hub.subscribes()) >= 2, timeout=5)
        await until(lambda: first not in hub.active and len(hub.active) >= 1, timeout=5)
        assert all(ok for _, _, ok in hub.verify_results)
        assert any(f["hub.mode"] == "unsubscribe" and f["hub.callback"] == first for f in hub.requests)
        secrets_sent = [f["hub.secret"] for f in hub.subscribes()]
        assert len(set(secrets_sent)) == len(secrets_sent)
        # the retired callback, and its secret at the live ones, deliver nothing
        assert await hub.push(first, atom(hub.base, 5), secret=secret) == 410
        assert set(await hub.publish(atom(hub.base, 5), secret=secret)) <= {202, 410}
        assert stage.health().websub[f"{hub.base}/hub"].active == 1
    finally:
        await stage.stop()
    assert await raw_bodies(broker_address, s, expect=1) == [("poll", atom(hub.base, 1))]


async def test_forged_verifications_and_early_pushes_change_nothing(broker_address: str, hub: Hub) -> None:
    hub.held.clear()  # the hub takes its time to verify
    s = await setup(broker_address, hub)  # no operator key: random secrets, persisted
    stage = await started(s)
    try:
        await until(lambda: len(hub.subscribes()) == 1)
        form = hub.subscribes()[0]
        pending = form["hub.callback"]
        assert len(form["hub.secret"]) == 64
        wrong = f"{s.callback}/pushed/{'0' * 32}"
        async with aiohttp.ClientSession() as session:

            async def verify(url: str, **params: str) -> int:
                query = {"hub.topic": hub.topic, "hub.challenge": "c", **params}
                async with session.get(url, params=query) as r:
                    return r.status

            # a push to the callback before the hub verified it is not content
            assert await hub.push(pending, atom(hub.base, 9), secret=form["hub.secret"]) == 410
            # verifications the fetcher did not ask for are refused, whatever they claim
            assert await verify(wrong, **{"hub.mode": "subscribe", "hub.lease_seconds": "inf"}) == 404
            assert await verify(wrong, **{"hub.mode": "subscribe"}) == 404
            assert await verify(f"{s.callback}/pushed", **{"hub.mode": "subscribe"}) == 404  # no token
            assert await verify(pending, **{"hub.mode": "unsubscribe"}) == 404  # not what we asked
            assert await verify(pending, **{"hub.mode": "subscribe", "hub.topic": f"{hub.base}/x"}) == 404
            assert await verify(f"{s.callback}/nobody/{'0' * 32}", **{"hub.mode": "subscribe"}) == 404
            # the right token, but a lease for ever: refused, nothing activated
            for lease in ("inf", "nan", "-1", "1e999", "forever"):
                assert await verify(pending, **{"hub.mode": "subscribe", "hub.lease_seconds": lease}) == 404
            assert stage.feed_status("pushed").websub["status"] == "subscribing"  # type: ignore[union-attr,index]
            assert not stage.health().websub[f"{hub.base}/hub"].active

            # the hub verifies: active, and the push arrives
            hub.held.set()
            await until(lambda: pending in hub.active)
            assert await hub.push(pending, atom(hub.base, 2)) == 202

            # a forged denial (wrong token, no token, wrong topic) switches nothing off
            assert await verify(wrong, **{"hub.mode": "denied"}) == 404
            assert await verify(f"{s.callback}/pushed", **{"hub.mode": "denied"}) == 404
            assert await verify(pending, **{"hub.mode": "denied", "hub.topic": f"{hub.base}/x"}) == 404
            # and a forged re-verification with an endless lease cannot stretch it
            assert await verify(pending, **{"hub.mode": "subscribe", "hub.lease_seconds": "inf"}) == 404
            status = stage.feed_status("pushed").websub  # type: ignore[union-attr]
            assert status is not None and status["status"] == "active"
            assert isinstance(status["lease_until"], float) and status["lease_until"] < time.time() + 61
            assert await hub.push(pending, atom(hub.base, 3)) == 202
    finally:
        await stage.stop()
    assert await raw_bodies(broker_address, s, expect=3) == [
        ("poll", atom(hub.base, 1)),
        ("push", atom(hub.base, 2)),
        ("push", atom(hub.base, 3)),
    ]


async def test_an_endless_lease_from_the_hub_is_clamped_or_refused(broker_address: str, hub: Hub) -> None:
    hub.lease_override = "inf"
    s = await setup(broker_address, hub, max_lease=30, verify_timeout=1)
    stage = await started(s)
    try:
        await until(lambda: len(hub.verify_results) >= 1)
        assert hub.verify_results[0] == ("subscribe", 404, False)
        assert not hub.active
        hub.lease_override = "999999999"  # a number, but above max_lease: clamped
        await until(lambda: len(hub.active) == 1, timeout=15)  # the retry after verify_timeout
        status = stage.feed_status("pushed").websub  # type: ignore[union-attr]
        assert status is not None and status["status"] == "active"
        assert isinstance(status["lease_until"], float) and status["lease_until"] <= time.time() + 30
    finally:
        await stage.stop()


async def test_replays_are_refused_also_after_a_restart(broker_address: str, hub: Hub) -> None:
    port = free_port("127.0.0.1")
    s = await setup(broker_address, hub, port=port, secret=KEY, poll_interval=0.3)
    stage = await started(s)
    try:
        await until(lambda: len(hub.active) == 1)
        callback = only_callback(hub)
        assert await hub.push(callback, atom(hub.base, 2)) == 202
        assert await hub.push(callback, atom(hub.base, 3)) == 202
        # a captured, correctly signed push of an older body: not produced again
        assert await hub.push(callback, atom(hub.base, 2)) == 200
        assert await hub.push(callback, atom(hub.base, 1)) == 200  # what the poll saw counts too
        assert stage.health().websub[f"{hub.base}/hub"].replayed == 2
        # the origin still serves body 1 (a stale copy of what was pushed): polls do not produce it

        def stale_poll() -> bool:
            status = stage.feed_status("pushed")
            return status is not None and any(a.reason == "an earlier body again" for a in status.attempts)

        await until(stale_poll, timeout=5)
        await asyncio.sleep(0.3)  # the state record of the last push is on its way
    finally:
        await stage.stop()

    # the same instance restarts: it still accepts the hub's pushes at the callback it had
    # verified (its secret derives from the key and the persisted nonce), and still knows
    # which bodies it has seen (the hub holds back the new subscription's verification meanwhile)
    hub.held.clear()
    stage = await started(s)
    try:
        assert await hub.push(callback, atom(hub.base, 2)) == 200
        assert await hub.push(callback, atom(hub.base, 1)) == 200
        assert await hub.push(callback, atom(hub.base, 4), secret="wrong") == 202
        assert await hub.push(callback, atom(hub.base, 4)) == 202
        # it subscribed afresh, and retired the old callback once the new one was verified
        hub.held.set()
        await until(lambda: len(hub.active) == 1 and callback not in hub.active)
        assert await hub.push(only_callback(hub), atom(hub.base, 3)) == 200
    finally:
        await stage.stop()
    assert await raw_bodies(broker_address, s, expect=4) == [
        ("poll", atom(hub.base, 1)),
        ("push", atom(hub.base, 2)),
        ("push", atom(hub.base, 3)),
        ("push", atom(hub.base, 4)),
    ]


async def test_unsubscribe_on_shutdown(broker_address: str, hub: Hub) -> None:
    s = await setup(broker_address, hub, unsubscribe_on_shutdown=True, unsubscribe_timeout=3)
    stage = await started(s)
    await until(lambda: len(hub.active) == 1)
    callback = only_callback(hub)
    started_at = time.monotonic()
    await stage.stop()
    assert time.monotonic() - started_at < 3
    assert not hub.active
    assert ("unsubscribe", 200, True) in hub.verify_results
    assert any(f["hub.mode"] == "unsubscribe" and f["hub.callback"] == callback for f in hub.requests)


async def test_no_unsubscribe_on_shutdown_by_default(broker_address: str, hub: Hub) -> None:
    s = await setup(broker_address, hub)
    stage = await started(s)
    await until(lambda: len(hub.active) == 1)
    await stage.stop()
    assert len(hub.active) == 1  # a rolling restart keeps the subscription
    assert not any(f["hub.mode"] == "unsubscribe" for f in hub.requests)


async def test_without_a_key_no_secret_reaches_kafka(broker_address: str, hub: Hub) -> None:
    port = free_port("127.0.0.1")
    s = await setup(broker_address, hub, port=port)
    stage = await started(s)
    try:
        await until(lambda: len(hub.active) == 1)
        callback = only_callback(hub)
        secret = hub.active[callback]["hub.secret"]
        assert await hub.push(callback, atom(hub.base, 2)) == 202
        await asyncio.sleep(0.3)
    finally:
        await stage.stop()
    topic = s.settings.fetch.state_topic
    assert topic is not None
    records = await read_topic(broker_address, topic, expect=1, settle=0.3)
    assert records and all(secret.encode() not in r.value for r in records)
    assert all(b'"nonce"' not in r.value and b'"secret"' not in r.value for r in records)

    # after a restart the old callback's secret is gone: its pushes are refused until the new
    # subscription is verified, and then arrive there
    stage = await started(s)
    try:
        assert await hub.push(callback, atom(hub.base, 3), secret=secret) == 410
        await until(lambda: len(hub.active) == 2)
        assert await hub.push(next(c for c in hub.active if c != callback), atom(hub.base, 3)) == 202
    finally:
        await stage.stop()
    assert await raw_bodies(broker_address, s, expect=3) == [
        ("poll", atom(hub.base, 1)),
        ("push", atom(hub.base, 2)),
        ("push", atom(hub.base, 3)),
    ]
