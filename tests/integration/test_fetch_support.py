"""Loopback-only helpers for the fetch tests: a fixture HTTP server and a resolver with no network.

Every fetcher in these tests uses ``StaticResolver``, so no name is ever looked up on the
network and no packet can leave loopback, whatever URL a test (or a redirect) names.
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

RSS_V1 = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>1</guid><title>one</title></item></channel></rss>"""
RSS_V2 = RSS_V1.replace(b"</channel>", b"<item><guid>2</guid><title>two</title></item></channel>")
CHALLENGE = b"""<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>
<script>window._cf_chl_opt={cvId: '3'};</script></body></html>"""


class StaticResolver(AbstractResolver):
    """Names from a fixed map, everything else "does not exist": DNS without the network."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        self.names = names or {}
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.names:
            raise OSError(socket.EAI_NONAME, f"{host} is not in the test resolver")
        ip = self.names[host]
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=ip, port=port, family=fam, proto=0, flags=socket.AI_NUMERICHOST)
        ]

    async def close(self) -> None:
        return None


@cache
def gzip_bomb(decompressed: int = 256 * 1024 * 1024) -> bytes:
    """~256 KiB of gzip that inflates to 256 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decompressed >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass
class FeedServer:
    """The fixture feeds: /etag, /lm, /429, /500, /503, /drip, /bomb, /loop/a, /chain/N, /big-error, ..."""

    hits: Counter[str] = field(default_factory=Counter)
    requests: list[web.Request] = field(default_factory=list)
    body: bytes = RSS_V1
    etag_enabled: bool = True
    server: TestServer | None = None
    concurrent: int = 0
    max_concurrent: int = 0
    #: the client's (address, port) of each request: how many connections the fetcher opened
    peers: list[tuple[str, int]] = field(default_factory=list)
    #: (path, monotonic time) of each request as it arrived
    arrivals: list[tuple[str, float]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()

        @web.middleware
        async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
            self.hits[request.path] += 1
            self.arrivals.append((request.path, time.monotonic()))
            self.requests.append(request)
            self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
            return await handler(request)

        app.middlewares.append(record)
        r = app.router

        def fixed(status: int = 200, **kw: Any) -> Any:
            async def handler(_: web.Request) -> web.Response:
                return web.Response(status=status, **kw)

            return handler

        def moved(location: str) -> Any:
            async def handler(_: web.Request) -> web.Response:
                raise web.HTTPFound(location)

            return handler

        r.add_get("/etag", self.etag)
        r.add_get("/lm", self.last_modified)
        r.add_get("/plain", self.plain)
        r.add_get("/429", fixed(429, headers={"Retry-After": "120"}))
        r.add_get("/500", fixed(500, text="boom"))
        r.add_get("/503", fixed(503, headers={"Retry-After": "30"}))
        r.add_get("/404", fixed(404, text="<html>not found</html>"))
        r.add_get("/drip", self.drip)
        r.add_get("/bomb", self.bomb)
        r.add_get("/big", fixed(body=b"<rss>" + b" " * (2 << 20) + b"</rss>"))
        r.add_get("/loop/a", moved("/loop/b"))
        r.add_get("/loop/b", moved("/loop/a"))
        r.add_get("/chain/{n}", self.chain)
        r.add_get("/challenge", fixed(403, body=CHALLENGE, content_type="text/html"))
        r.add_get("/html", fixed(body=b"<!DOCTYPE html><html>hi</html>", content_type="text/html"))
        r.add_get("/echo", self.echo)
        r.add_get("/to/{host}", self.to_host)
        r.add_get("/gzip", self.gzipped)
        r.add_get("/slow/{n}", self.slow)
        r.add_get("/big-error", self.big_error)
        return app

    async def start(self) -> str:
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return f"http://127.0.0.1:{self.server.port}"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    async def etag(self, request: web.Request) -> web.Response:
        import hashlib

        tag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if self.etag_enabled and request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        headers = {"ETag": tag} if self.etag_enabled else {}
        return web.Response(body=self.body, content_type="application/rss+xml", headers=headers)

    async def last_modified(self, request: web.Request) -> web.Response:
        stamp = "Mon, 04 Nov 2024 10:00:00 GMT"
        if request.headers.get("If-Modified-Since") == stamp:
            return web.Response(status=304)
        return web.Response(
            body=self.body, content_type="application/rss+xml", headers={"Last-Modified": stamp}
        )

    async def plain(self, _: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/rss+xml")

    async def drip(self, request: web.Request) -> web.StreamResponse:
        pause = float(request.query.get("every", "1"))
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        await response.prepare(request)
        try:
            for _ in range(200):
                await response.write(b" ")
                await asyncio.sleep(pause)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def bomb(self, request: web.Request) -> web.StreamResponse:
        data = gzip_bomb()
        response = web.StreamResponse(
            headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
        )
        await response.prepare(request)
        try:
            for i in range(0, len(data), 16384):
                await response.write(data[i : i + 16384])
        except ConnectionError:
            pass
        return response

    async def gzipped(self, request: web.Request) -> web.Response:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        data = compressor.compress(self.body) + compressor.flush()
        return web.Response(
            body=data, headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
        )

    async def big_error(self, _: web.Request) -> web.Response:
        """A 500 whose page is ``body``: longer than the fetcher reads of an error page."""
        return web.Response(status=500, body=self.body, content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        """Counts how many requests are served at once (the per-host cap is seen from here)."""
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            await asyncio.sleep(float(request.query.get("s", "0.3")))
        finally:
            self.concurrent -= 1
        body = self.body.replace(b"<title>t</title>", f"<title>{request.match_info['n']}</title>".encode())
        return web.Response(body=body, content_type="application/rss+xml")

    async def chain(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(body=self.body, content_type="application/rss+xml")
        raise web.HTTPMovedPermanently(f"/chain/{n - 1}")

    async def echo(self, request: web.Request) -> web.Response:
        lines = [f"{k}: {v}" for k, v in request.headers.items()]
        return web.Response(
            text="<rss>\n" + "\n".join(lines) + "\n</rss>", content_type="application/rss+xml"
        )

    async def to_host(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{request.match_info['host']}:{self.port}/echo")


class LoopbackHosts:
    """One app served at one port on 127.0.0.1 to 127.0.0.N: N distinct hosts on loopback.

    Feeds are placed in the feeds topic by host (``ingestor.fetch.placement``), so a test of
    feeds shared among fetchers needs feeds on several hosts, not paths of one."""

    def __init__(self, app: web.Application, count: int) -> None:
        self.runner = web.AppRunner(app)
        self.count = count
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        for number in range(2, self.count + 1):
            await web.TCPSite(self.runner, f"127.0.0.{number}", self.port).start()

    def url(self, number: int, path: str) -> str:
        """``path`` on host number ``number`` (1 to ``count``)."""
        return f"http://127.0.0.{(number - 1) % self.count + 1}:{self.port}{path}"

    async def close(self) -> None:
        await self.runner.cleanup()
