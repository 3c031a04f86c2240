"""Issue 13 against real loopback servers: credentials stay with their origin, secret references
resolve at fetch time, and a proxy does not carry requests past the private-network guard.

Only 127.0.0.1 is ever dialled: names come from ``StaticResolver``, and the "proxy" answers
every request itself (it dials nothing), recording what it was asked.  The guard's refusals are
checked by what the proxy saw: nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ingestor.config import FeedConfig, FetchConfig
from ingestor.fetch.guard import GUARD_MARK
from ingestor.fetch.http import Fetcher
from ingestor.fetch.outcome import Outcome
from tests.integration.test_fetch_support import RSS_V1, StaticResolver

pytestmark = pytest.mark.integration

TOKEN = "tok-S3CRET-two"
KEY = "key-S3CRET-three"
COOKIE = "session=cookie-S3CRET"
CREDENTIAL_HEADERS = ("Authorization", "X-Api-Key", "Cookie")


def fetch_config(**kw: Any) -> FetchConfig:
    base: dict[str, Any] = {
        "allow_private_networks": True,
        "retries": 0,
        "connect_timeout": 2,
        "read_timeout": 2,
        "total_timeout": 5,
    }
    return FetchConfig.model_validate({**base, **kw})


def feed(url: str, **kw: Any) -> FeedConfig:
    return FeedConfig.model_validate({"id": "f1", "url": url, **kw})


@dataclass
class Origin:
    """An HTTP server on its own port (so its own origin): /feed, /redirect?to=URL; records headers."""

    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.seen.append((request.path, dict(request.headers)))
            if request.path == "/redirect":
                raise web.HTTPFound(request.query["to"])
            return web.Response(body=RSS_V1, content_type="application/rss+xml")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self.base

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def headers_at(self, path: str) -> list[dict[str, str]]:
        return [headers for seen_path, headers in self.seen if seen_path == path]


@dataclass
class RecordingProxy:
    """A forward proxy on 127.0.0.1 that dials nothing: it answers itself and records each request.

    ``GET http://host/moved`` answers a redirect to ``moved_to``; every other GET a feed; CONNECT 403.
    """

    requests: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    connections: int = 0
    moved_to: str = "http://10.0.0.5/feed"
    host: str = "127.0.0.1"
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.decode("latin-1").split("\r\n", 1)[0]
            self.requests.append(line)
            self.heads.append(head.decode("latin-1"))
            if line.startswith("CONNECT "):
                response = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            elif line.split(" ")[1].endswith("/moved"):
                response = (
                    f"HTTP/1.1 302 Found\r\nLocation: {self.moved_to}\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
            else:
                response = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                    + f"Content-Length: {len(RSS_V1)}\r\nConnection: close\r\n\r\n".encode()
                    + RSS_V1
                )
            writer.write(response)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def origins() -> AsyncIterator[tuple[Origin, Origin]]:
    first, second = Origin(), Origin()
    await first.start()
    await second.start()
    yield first, second
    for origin in (first, second):
        assert origin.server is not None
        await origin.server.close()


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    recording = RecordingProxy()
    await recording.start()
    yield recording
    await recording.close()


async def started(config: FetchConfig, names: dict[str, str] | None = None) -> Fetcher:
    fetcher = Fetcher(config, resolver=StaticResolver(names))
    await fetcher.start()
    return fetcher


# --- 1. credentials stay with their origin -------------------------------------------------------


async def test_cross_origin_redirect_drops_configured_headers(origins: tuple[Origin, Origin]) -> None:
    first, second = origins
    fetcher = await started(fetch_config())
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "X-Api-Key": KEY,
        "Cookie": COOKIE,
        "Accept-Language": "de",
    }
    try:
        away = await fetcher.fetch(feed(f"{first.base}/redirect?to={second.base}/feed", headers=headers))
        assert away.outcome is Outcome.OK and away.redirects == 1 and away.final_url == f"{second.base}/feed"
        (asked,) = first.headers_at("/redirect")
        assert asked["Authorization"] == f"Bearer {TOKEN}" and asked["X-Api-Key"] == KEY
        assert asked["Cookie"] == COOKIE
        (landed,) = second.headers_at("/feed")
        assert not set(CREDENTIAL_HEADERS) & set(landed), landed  # none of them crossed
        assert "Accept-Language" not in landed  # configured headers belong to the configured origin
        assert landed["User-Agent"]  # the ordinary headers still go

        same = await fetcher.fetch(feed(f"{first.base}/redirect?to=/feed", headers=headers))
        assert same.outcome is Outcome.OK and same.redirects == 1
        (kept,) = first.headers_at("/feed")
        assert kept["Authorization"] == f"Bearer {TOKEN}" and kept["X-Api-Key"] == KEY
        assert kept["Cookie"] == COOKIE
    finally:
        await fetcher.close()


async def test_cross_origin_redirect_drops_basic_auth_and_same_host_other_port_is_another_origin(
    origins: tuple[Origin, Origin],
) -> None:
    first, second = origins
    fetcher = await started(fetch_config())
    try:
        # 127.0.0.1 on another port is another origin (scheme, host, port)
        result = await fetcher.fetch(
            feed(f"{first.base}/redirect?to={second.base}/feed", username="u", password="p")
        )
        assert result.outcome is Outcome.OK
        assert first.headers_at("/redirect")[0]["Authorization"] == "Basic dTpw"
        assert "Authorization" not in second.headers_at("/feed")[0]
        # there and back again: the configured origin gets its credentials, the other never
        await fetcher.fetch(
            feed(
                f"{first.base}/redirect?to={second.base}/redirect?to={first.base}/back",
                headers={"X-Api-Key": KEY},
            )
        )
        assert "X-Api-Key" not in second.headers_at("/redirect")[0]
        assert first.headers_at("/back")[0]["X-Api-Key"] == KEY
    finally:
        await fetcher.close()


# --- 2. secret references, resolved at fetch time -----------------------------------------------


async def test_references_are_resolved_at_fetch_time(
    origins: tuple[Origin, Origin], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = origins
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("FEED_SECRET_TOKEN", TOKEN)
    fetcher = await started(fetch_config(secret_dirs=[str(tmp_path)]))
    configured = feed(
        f"{first.base}/feed",
        headers={"Authorization": {"env": "FEED_SECRET_TOKEN"}, "X-Api-Key": {"file": str(key_file)}},
    )
    try:
        assert (await fetcher.fetch(configured)).outcome is Outcome.OK
        seen = first.headers_at("/feed")[-1]
        assert seen["Authorization"] == TOKEN and seen["X-Api-Key"] == KEY
        key_file.write_text("rotated")  # a rotated secret file is read at the next fetch
        assert (await fetcher.fetch(configured)).outcome is Outcome.OK
        assert first.headers_at("/feed")[-1]["X-Api-Key"] == "rotated"
    finally:
        await fetcher.close()


async def test_unresolvable_reference_fails_that_feed_before_any_request(
    origins: tuple[Origin, Origin], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = origins
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    outside = tmp_path / "outside"
    outside.write_text(KEY)
    fetcher = await started(fetch_config(secret_dirs=[str(tmp_path / "secrets")]))
    try:
        cases = {
            "password: env FEED_SECRET_UNSET is not set": {
                "username": "u",
                "password": {"env": "FEED_SECRET_UNSET"},
            },
            "headers.X-Api-Key: env AWS_SECRET_ACCESS_KEY is not allowed": {
                "headers": {"X-Api-Key": {"env": "AWS_SECRET_ACCESS_KEY"}}
            },
            "headers.Authorization: file": {"headers": {"Authorization": {"file": str(outside)}}},
            "proxy_password: the value is in the config file": {
                "proxy": "http://127.0.0.1:9",
                "proxy_username": "p",
                "proxy_password": {"config": True},
            },
        }
        for expected, fields in cases.items():
            result = await fetcher.fetch(feed(f"{first.base}/feed", **fields))
            assert result.outcome is Outcome.SECRET and expected in (result.reason or ""), result.reason
            assert KEY not in (result.reason or "")
        assert first.seen == []  # nothing was sent anywhere
        assert (await fetcher.fetch(feed(f"{first.base}/feed"))).outcome is Outcome.OK  # others go on
    finally:
        await fetcher.close()


# --- 3. the guard applies through a proxy ---------------------------------------------------------

BLOCKED_THROUGH_PROXY = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/feed",
    "https://10.0.0.5/feed",  # would be a CONNECT
    "http://localhost/feed",
    "http://metadata.localhost/feed",
    "http://[::1]/feed",
    "http://[fec0::1]/feed",
    "http://[::ffff:169.254.169.254]/feed",
    "http://internal.test/feed",  # a name that resolves to a private address here
    "http://internal6.test/feed",
    "http://mixed.test/feed",
]
NAMES = {
    "internal.test": "10.1.2.3",
    "internal6.test": "fd00::5",
    "mixed.test": "169.254.169.254",
    "feeds.example.test": "93.184.215.14",  # public: the proxy may fetch it (it dials nothing)
}


@pytest.mark.parametrize("url", BLOCKED_THROUGH_PROXY)
async def test_proxy_does_not_bypass_the_guard(proxy: RecordingProxy, url: str) -> None:
    proxy_url = proxy.url
    fetcher = await started(
        # the proxy's own address is allowed (the operator's choice); the targets are not
        fetch_config(allow_private_networks=False, allowed_networks=["127.0.0.1/32"], proxy=proxy_url),
        NAMES,
    )
    try:
        result = await fetcher.fetch(feed(url))
        assert result.outcome is Outcome.BLOCKED, (result.outcome, result.reason)
        assert GUARD_MARK in (result.reason or "")
        assert proxy.connections == 0 and proxy.requests == []
    finally:
        await fetcher.close()


async def test_proxy_fetches_public_targets_and_rechecks_redirects(proxy: RecordingProxy) -> None:
    proxy_url = proxy.url
    fetcher = await started(
        fetch_config(allow_private_networks=False, allowed_networks=["127.0.0.1/32"], proxy=proxy_url), NAMES
    )
    try:
        ok = await fetcher.fetch(feed("http://feeds.example.test/feed"))
        assert ok.outcome is Outcome.OK and ok.body == RSS_V1
        assert proxy.requests == ["GET http://feeds.example.test/feed HTTP/1.1"]
        moved = await fetcher.fetch(feed("http://feeds.example.test/moved"))  # 302 to 10.0.0.5
        assert moved.outcome is Outcome.BLOCKED and "10.0.0.5" in (moved.reason or "")
        assert proxy.requests[1:] == ["GET http://feeds.example.test/moved HTTP/1.1"]  # not the target
        unknown = await fetcher.fetch(feed("http://unknown.test/feed"))  # cannot be checked: not sent
        assert unknown.outcome is Outcome.DNS and "before the proxy" in (unknown.reason or "")
        assert len(proxy.requests) == 2
    finally:
        await fetcher.close()


async def test_private_proxy_needs_allowing(proxy: RecordingProxy) -> None:
    proxy_url = proxy.url
    fetcher = await started(fetch_config(allow_private_networks=False, proxy=proxy_url), NAMES)
    try:
        result = await fetcher.fetch(feed("http://feeds.example.test/feed"))
        assert result.outcome is Outcome.BLOCKED and "127.0.0.1" in (result.reason or "")
        assert proxy.connections == 0
    finally:
        await fetcher.close()


async def test_proxy_credentials_go_to_the_proxy_only(proxy: RecordingProxy, tmp_path: Path) -> None:
    secret = tmp_path / "proxy-password"
    secret.write_text("pp")
    proxy_url = proxy.url
    fetcher = await started(fetch_config(secret_dirs=[str(tmp_path)]), NAMES)
    try:
        result = await fetcher.fetch(
            feed(
                "http://feeds.example.test/feed",
                proxy=proxy_url,
                proxy_username="pu",
                proxy_password={"file": str(secret)},
            )
        )
        assert result.outcome is Outcome.OK and len(proxy.requests) == 1
        assert "Proxy-Authorization: Basic cHU6cHA=" in proxy.heads[0]  # pu:pp
        tunnel = await fetcher.fetch(
            feed(
                "https://feeds.example.test/feed",
                proxy=proxy_url,
                proxy_username="pu",
                proxy_password={"file": str(secret)},
            )
        )
        assert tunnel.outcome is Outcome.CONNECT and "proxy refused: 403" in (tunnel.reason or "")
        assert proxy.requests[1] == "CONNECT feeds.example.test:443 HTTP/1.1"
        assert "Proxy-Authorization: Basic cHU6cHA=" in proxy.heads[1]
    finally:
        await fetcher.close()


@pytest.mark.parametrize("url", ["http://2130706433/feed", "http://0177.0.0.1/feed", "http://127.1/feed"])
async def test_odd_ip_spellings_through_a_proxy_meet_the_guard(url: str) -> None:
    """The system resolver reads these as 127.0.0.1 without a DNS query (and so may the proxy).

    The proxy listens on 127.0.0.2, the only address allowed: ``allowed_networks`` exempts an
    address as a target too, so an operator allows the proxy's exact address, nothing wider.
    """
    proxy = RecordingProxy(host="127.0.0.2")
    await proxy.start()
    fetcher = Fetcher(
        fetch_config(allow_private_networks=False, allowed_networks=["127.0.0.2/32"], proxy=proxy.url)
    )
    await fetcher.start()
    try:
        result = await fetcher.fetch(feed(url))
        assert result.outcome in (Outcome.BLOCKED, Outcome.DNS), result.reason
        assert proxy.connections == 0
        reached = await fetcher.fetch(feed("http://93.184.215.14/feed"))  # a public literal: sent
        assert reached.outcome is Outcome.OK and proxy.connections == 1
    finally:
        await fetcher.close()
        await proxy.close()
