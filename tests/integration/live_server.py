"""A loopback newsroom for tests: an aiohttp server whose pages the test edits between polls."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Page:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    hits: int = 0


@dataclass
class LiveServer:
    """Serves `pages` by path with ETag support; start() binds 127.0.0.1 on a free port."""

    pages: dict[str, Page] = field(default_factory=dict)
    runner: web.AppRunner | None = None
    port: int = 0

    async def _serve(self, request: web.Request) -> web.Response:
        page = self.pages.get(request.path)
        if page is None:
            return web.Response(status=404, text="not found")
        page.hits += 1
        etag = '"' + hashlib.sha256(page.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=page.body, headers={"ETag": etag, "Content-Type": page.content_type})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def set(self, path: str, body: str | bytes, content_type: str | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        page = self.pages.setdefault(path, Page(data))
        page.body = data
        if content_type:
            page.content_type = content_type
