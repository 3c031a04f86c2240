"""WebSub against a hub written here, all on 127.0.0.1: discovery, verification, signed pushes,
lease renewal, the slow poll fallback, and the per-hub push/poll counts."""

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
from ingestor.broker import free_port
from ingestor.fetch.http import Fetcher
from ingestor.fetch.service import FetchStage
from ingestor.fetch.websub_protocol import feed_secret, sign
from ingestor.kafka import KafkaConnection, ensure_topics
from tests.conftest import make_settings
from tests.integration.kafka_helpers import read_topic
from tests.integration.test_fetch_support import StaticResolver

pytestmark = pytest.mark.integration

SECRET = "s3cret"


def atom(base: str, n: int) -> bytes:
    return (
        f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        f'<link rel="hub" href="{base}/hub"/><link rel="self" href="{base}/feed.xml"/>'
        f"<entry><id>urn:{n}</id><title>entry {n}</title></entry></feed>"
    ).encode()


@dataclass
class Hub:
    """A minimal WebSub hub and publisher: verifies every (un)subscription with a random challenge,
    grants the lease asked for, and pushes signed content to verified subscribers."""

    subscribes: list[dict[str, str]] = field(default_factory=list)
    active: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    verify_results: list[tuple[str, int, bool]] = field(default_factory=list)
    feed_body: bytes = b""
    server: TestServer | None = None
    base: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hub", self._hub)
        app.router.add_get("/feed.xml", self._feed)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        self.base = f"http://127.0.0.1:{self.server.port}"
        self.feed_body = atom(self.base, 1)
        return self.base

    async def _feed(self, request: web.Request) -> web.Response:
        return web.Response(body=self.feed_body, content_type="application/atom+xml")

    async def _hub(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.subscribes.append(form)
        asyncio.get_running_loop().create_task(self._verify(form))
        return web.Response(status=202)

    async def _verify(self, form: dict[str, str]) -> None:
        challenge = secrets.token_hex(8)
        params = {"hub.mode": form["hub.mode"], "hub.topic": form["hub.topic"], "hub.challenge": challenge}
        if form["hub.mode"] == "subscribe":
            params["hub.lease_seconds"] = form.get("hub.lease_seconds", "60")
        async with aiohttp.ClientSession() as session, session.get(form["hub.callback"], params=params) as r:
            ok = r.status == 200 and await r.text() == challenge
        self.verify_results.append((form["hub.mode"], r.status, ok))
        key = (form["hub.topic"], form["hub.callback"])
        if ok and form["hub.mode"] == "subscribe":
            self.active[key] = form
        elif ok:
            self.active.pop(key, None)

    async def publish(
        self, topic: str, body: bytes, *, signature: Callable[[str, bytes], str] | None = None
    ) -> list[int]:
        statuses = []
        async with aiohttp.ClientSession() as session:
            for (sub_topic, callback), form in list(self.active.items()):
                if sub_topic != topic:
                    continue
                headers = {
                    "Content-Type": "application/atom+xml",
                    "Link": f'<{self.base}/hub>; rel="hub", <{topic}>; rel="self"',
                }
                secret = form.get("hub.secret")
                if signature is not None:
                    headers["X-Hub-Signature"] = signature(secret or "", body)
                elif secret:
                    headers["X-Hub-Signature"] = sign(secret, body)
                async with session.post(callback, data=body, headers=headers) as response:
                    statuses.append(response.status)
        return statuses


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


async def test_push_subscription_end_to_end(broker_address: str, hub: Hub) -> None:
    port = free_port("127.0.0.1")
    callback = f"http://127.0.0.1:{port}/websub"
    websub = {
        "callback_url": callback,
        "listen": f"127.0.0.1:{port}",
        "secret": SECRET,
        "lease": 2,
        "renew_before": 0.4,
        "poll_interval": 1.0,
        "verify_timeout": 5,
    }
    fetch: dict[str, Any] = {
        "sharding": False,
        "state_topic": f"ws-{uuid.uuid4().hex[:8]}",
        "min_interval": 0.05,
        "jitter": 0,
        "startup_spread": 0,
        "retries": 0,
        "websub": websub,
    }
    topic = f"{hub.base}/feed.xml"
    settings = make_settings(
        broker_address, feeds=[{"id": "pushed", "url": topic, "interval": 0.2}], fetch=fetch
    )
    connection = KafkaConnection(broker_address, settings.kafka)
    await ensure_topics(connection, settings.topics)
    stage = FetchStage(settings, connection, fetcher=Fetcher(settings.fetch, resolver=StaticResolver()))
    await stage.start()
    try:
        # discovered from the first poll, subscribed, verified by the hub (with our per-feed secret)
        await until(lambda: (topic, f"{callback}/pushed") in hub.active)
        form = hub.active[(topic, f"{callback}/pushed")]
        assert form["hub.secret"] == feed_secret(SECRET, "pushed") and form["hub.lease_seconds"] == "2"
        await until(
            lambda: (
                stage.health().websub.get(f"{hub.base}/hub") is not None
                and stage.health().websub[f"{hub.base}/hub"].active == 1
            )
        )
        # polling goes on, but only as the slow fallback
        polls = len(stage.feed_status("pushed").attempts)  # type: ignore[union-attr]
        await until(lambda: len(stage.feed_status("pushed").attempts) > polls)  # type: ignore[union-attr]
        last = stage.feed_status("pushed").attempts[-1]  # type: ignore[union-attr]
        assert (last.next_due - last.at).total_seconds() >= 0.95

        # a signed push of new content is produced once, via=push; the same body again is not
        assert await hub.publish(topic, atom(hub.base, 2)) == [202]
        assert await hub.publish(topic, atom(hub.base, 2)) == [200]
        # bad or missing signatures are refused and never produced
        assert await hub.publish(topic, atom(hub.base, 3), signature=lambda s, b: sign("wrong", b)) == [403]
        assert await hub.publish(topic, atom(hub.base, 3), signature=lambda s, b: "") == [403]
        assert await hub.publish(topic, atom(hub.base, 3), signature=lambda s, b: sign(s, b, "sha1")) == [202]

        # content that only polling finds is counted against the hub
        hub.feed_body = atom(hub.base, 4)
        await until(lambda: stage.health().websub[f"{hub.base}/hub"].polls == 1, timeout=5)
        stats = stage.health().websub[f"{hub.base}/hub"]
        assert (stats.pushes, stats.polls, stats.rejected) == (2, 1, 2)

        # the lease (2 s) is renewed before it runs out
        await until(lambda: sum(1 for f in hub.subscribes if f["hub.mode"] == "subscribe") >= 2, timeout=5)
        assert all(ok for _, _, ok in hub.verify_results)

        # a verification the fetcher did not ask for is refused
        async with aiohttp.ClientSession() as session:
            forged = {"hub.mode": "subscribe", "hub.topic": f"{hub.base}/other.xml", "hub.challenge": "x"}
            async with session.get(f"{callback}/pushed", params=forged) as response:
                assert response.status == 404
            async with session.get(f"{callback}/nobody", params={**forged, "hub.topic": topic}) as response:
                assert response.status == 404
            async with session.post(f"{callback}/nobody", data=b"x") as response:
                assert response.status == 410
        status = stage.feed_status("pushed")
        assert status is not None and status.websub is not None and status.websub["status"] == "active"
        assert any(a.via == "push" for a in status.attempts)
    finally:
        await stage.stop()
    records = await read_topic(broker_address, settings.topics.raw, expect=4, settle=0.3)
    seen = [(hdr.as_dict(r.headers)[hdr.VIA], r.value) for r in sorted(records, key=lambda r: r.offset)]
    assert seen == [
        ("poll", atom(hub.base, 1)),
        ("push", atom(hub.base, 2)),
        ("push", atom(hub.base, 3)),
        ("poll", atom(hub.base, 4)),
    ]
