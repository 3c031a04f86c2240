"""The fetcher against a real aiohttp server on 127.0.0.1: conditional GET, failures, hostile servers.

Every fetcher here resolves names with ``StaticResolver`` and connects only to loopback.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ingestor.config import FeedConfig, FetchConfig
from ingestor.fetch.http import Fetcher, Validators
from ingestor.fetch.outcome import Outcome
from tests.integration.test_fetch_support import RSS_V1, RSS_V2, FeedServer, StaticResolver, gzip_bomb

pytestmark = pytest.mark.integration


def fetch_config(**kw: Any) -> FetchConfig:
    base: dict[str, Any] = {
        "allow_private_networks": True,
        "retries": 2,
        "retry_backoff": 0.01,
        "retry_backoff_max": 0.05,
        "connect_timeout": 2,
        "read_timeout": 2,
        "total_timeout": 5,
    }
    return FetchConfig.model_validate({**base, **kw})


def feed(url: str, **kw: Any) -> FeedConfig:
    return FeedConfig.model_validate({"id": "f1", "url": url, **kw})


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    srv = FeedServer()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
def base(server: FeedServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def fetcher_for(config: FetchConfig, names: dict[str, str] | None = None) -> Fetcher:
    fetcher = Fetcher(config, resolver=StaticResolver(names))
    await fetcher.start()
    return fetcher


async def test_etag_roundtrip(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        first = await fetcher.fetch(feed(f"{base}/etag", format="feed"))
        assert first.outcome is Outcome.OK and first.body == RSS_V1 and first.status == 200
        assert first.etag and first.sha256 and first.content_type == "application/rss+xml"
        assert first.hints.ttl is None
        second = await fetcher.fetch(feed(f"{base}/etag"), Validators(etag=first.etag))
        assert second.outcome is Outcome.NOT_MODIFIED and second.body is None and second.etag == first.etag
        assert server.requests[-1].headers["If-None-Match"] == first.etag
        server.body = RSS_V2
        third = await fetcher.fetch(feed(f"{base}/etag"), Validators(etag=first.etag))
        assert third.outcome is Outcome.OK and third.body == RSS_V2 and third.etag != first.etag
    finally:
        await fetcher.close()


async def test_rss_ttl_and_cache_headers_become_hints(server: FeedServer, base: str) -> None:
    server.body = RSS_V1.replace(b"<title>t</title>", b"<title>t</title><ttl>15</ttl>")
    fetcher = await fetcher_for(fetch_config())
    try:
        result = await fetcher.fetch(feed(f"{base}/etag"))
        assert result.hints.ttl == 900 and result.hints.widen_to() == 900
    finally:
        await fetcher.close()


async def test_last_modified_roundtrip(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        first = await fetcher.fetch(feed(f"{base}/lm"))
        assert first.outcome is Outcome.OK and first.last_modified
        second = await fetcher.fetch(feed(f"{base}/lm"), Validators(last_modified=first.last_modified))
        assert second.outcome is Outcome.NOT_MODIFIED and second.last_modified == first.last_modified
        assert server.requests[-1].headers["If-Modified-Since"] == first.last_modified
    finally:
        await fetcher.close()


async def test_gzip_body_is_decompressed(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        result = await fetcher.fetch(feed(f"{base}/gzip", format="feed"))
        assert result.outcome is Outcome.OK and result.body == RSS_V1
    finally:
        await fetcher.close()


async def test_429_is_not_retried_and_carries_retry_after(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        result = await fetcher.fetch(feed(f"{base}/429"))
        assert result.outcome is Outcome.HTTP_429 and result.status == 429
        assert result.hints.retry_after == 120 and result.attempts == 1 and server.hits["/429"] == 1
    finally:
        await fetcher.close()


async def test_500_is_retried_with_backoff(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(retries=2))
    try:
        result = await fetcher.fetch(feed(f"{base}/500"))
        assert result.outcome is Outcome.HTTP_5XX and result.status == 500
        assert result.attempts == 3 and server.hits["/500"] == 3
        unavailable = await fetcher.fetch(feed(f"{base}/503"))  # with Retry-After: come back later
        assert unavailable.outcome is Outcome.HTTP_5XX and unavailable.attempts == 1
        assert unavailable.hints.retry_after == 30
        missing = await fetcher.fetch(feed(f"{base}/404"))
        assert missing.outcome is Outcome.HTTP_4XX and missing.attempts == 1
    finally:
        await fetcher.close()


async def test_connection_refused_is_classified(server: FeedServer) -> None:
    from ingestor.kafka.embedded import free_port

    fetcher = await fetcher_for(fetch_config(retries=1))
    try:
        result = await fetcher.fetch(feed(f"http://127.0.0.1:{free_port('127.0.0.1')}/x"))
        assert result.outcome is Outcome.CONNECT and result.attempts == 2
    finally:
        await fetcher.close()


async def test_unknown_name_is_dns(server: FeedServer) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        result = await fetcher.fetch(feed("http://no-such-feed.test/rss"))
        assert result.outcome is Outcome.DNS and result.attempts == 1
    finally:
        await fetcher.close()


async def test_slow_drip_is_cut_by_read_timeout(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(read_timeout=0.3, retries=0))
    try:
        started = time.monotonic()
        result = await fetcher.fetch(feed(f"{base}/drip?every=1"))
        assert result.outcome is Outcome.TIMEOUT and "read timeout" in (result.reason or "")
        assert time.monotonic() - started < 1.5
    finally:
        await fetcher.close()


async def test_fast_drip_is_cut_by_total_timeout(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(read_timeout=1, total_timeout=0.8, retries=0))
    try:
        started = time.monotonic()
        result = await fetcher.fetch(feed(f"{base}/drip?every=0.05"))
        assert result.outcome is Outcome.TIMEOUT and result.reason == "total timeout"
        assert time.monotonic() - started < 1.5
    finally:
        await fetcher.close()


async def test_gzip_bomb_is_cut_off_without_inflating(server: FeedServer, base: str) -> None:
    gzip_bomb()  # build it before measuring
    gc.collect()
    fetcher = await fetcher_for(fetch_config(max_body_bytes="15MiB", total_timeout=20))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        result = await fetcher.fetch(feed(f"{base}/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await fetcher.close()
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert result.outcome is Outcome.TOO_LARGE and result.body is None
    assert "after decompression" in (result.reason or "")
    assert peak < 40 * 1024 * 1024, f"python heap peaked at {peak / 2**20:.0f} MiB"
    assert rss_growth_mib < 48, f"process grew by {rss_growth_mib:.0f} MiB"


async def test_declared_length_over_the_cap(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(max_body_bytes="1MiB"))
    try:
        result = await fetcher.fetch(feed(f"{base}/big"))
        assert result.outcome is Outcome.TOO_LARGE and "content-length" in (result.reason or "")
    finally:
        await fetcher.close()


async def test_redirects_loop_limit_and_chain(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(max_redirects=5))
    try:
        loop = await fetcher.fetch(feed(f"{base}/loop/a"))
        assert loop.outcome is Outcome.REDIRECT_LOOP and "loop" in (loop.reason or "")
        assert server.hits["/loop/a"] == 1 and server.hits["/loop/b"] == 1
        too_many = await fetcher.fetch(feed(f"{base}/chain/6"))
        assert too_many.outcome is Outcome.REDIRECT_LOOP and "more than 5" in (too_many.reason or "")
        ok = await fetcher.fetch(feed(f"{base}/chain/5"))
        assert ok.outcome is Outcome.OK and ok.redirects == 5 and ok.final_url == f"{base}/chain/0"
        assert ok.url == f"{base}/chain/5"
    finally:
        await fetcher.close()


async def test_not_a_feed(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config())
    try:
        wall = await fetcher.fetch(feed(f"{base}/challenge"))
        assert wall.outcome is Outcome.NOT_A_FEED and "cloudflare" in (wall.reason or "")
        assert wall.status == 403 and wall.attempts == 1
        html = await fetcher.fetch(feed(f"{base}/html", format="feed"))
        assert html.outcome is Outcome.NOT_A_FEED and html.reason == "html page served as a feed"
        page = await fetcher.fetch(feed(f"{base}/html", format="html"))  # a page is fine as a page
        assert page.outcome is Outcome.OK
    finally:
        await fetcher.close()


async def test_user_agent_headers_and_basic_auth(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(user_agent="global-agent/1"), {"other.test": "127.0.0.1"})
    try:
        result = await fetcher.fetch(
            feed(
                f"{base}/echo",
                user_agent="feed-agent/2",
                headers={"X-Api-Key": "k"},
                username="u",
                password="p",
            )
        )
        assert result.outcome is Outcome.OK
        echoed = server.requests[-1].headers
        assert echoed["User-Agent"] == "feed-agent/2" and echoed["X-Api-Key"] == "k"
        assert echoed["Authorization"] == "Basic dTpw"
        await fetcher.fetch(feed(f"{base}/echo"))
        assert server.requests[-1].headers["User-Agent"] == "global-agent/1"
        # credentials stay on their origin when a redirect leaves it
        moved = await fetcher.fetch(feed(f"{base}/to/other.test", username="u", password="p"))
        assert moved.outcome is Outcome.OK and moved.final_url.startswith("http://other.test:")
        assert "Authorization" not in server.requests[-1].headers
        assert "Authorization" in server.requests[-2].headers
    finally:
        await fetcher.close()


async def test_at_most_one_idle_connection_per_origin(server: FeedServer, base: str) -> None:
    """Overlapping fetches of one host need a second connection; it is not kept afterwards.

    The pool hands connections out round-robin, so a second connection kept alive would stay
    open for as long as the host is polled: thousands of hosts, thousands of idle sockets.
    """
    fetcher = await fetcher_for(fetch_config(per_host_concurrency=4))
    assert server.server is not None and server.server.runner is not None
    web_server = server.server.runner.server
    assert web_server is not None
    try:
        # an origin keeps a connection only once it is fetched again within the keep-alive
        assert (await fetcher.fetch(feed(f"{base}/etag"))).outcome is Outcome.OK
        assert server.requests[-1].headers.get("Connection") == "close"
        for _ in range(3):
            first, second = await asyncio.gather(
                fetcher.fetch(feed(f"{base}/slow/1?s=0.3")), fetcher.fetch(feed(f"{base}/slow/2?s=0.1"))
            )
            assert first.outcome is second.outcome is Outcome.OK
            assert server.max_concurrent == 2  # they did overlap
            # the one started second asked for its connection to be closed (on two new
            # connections the server may see either request first)
            sent = {r.path: r.headers.get("Connection") for r in server.requests[-2:]}
            assert sent == {"/slow/1": None, "/slow/2": "close"}, sent
            deadline = time.monotonic() + 2
            while len(web_server.connections) > 1:  # the closed one goes within moments
                assert time.monotonic() < deadline, f"{len(web_server.connections)} connections open"
                await asyncio.sleep(0.02)
        # a fetch on its own keeps the connection alive and reuses it
        peers = []
        for _ in range(3):
            assert (await fetcher.fetch(feed(f"{base}/etag"))).outcome is Outcome.OK
            transport = server.requests[-1].transport
            assert transport is not None and server.requests[-1].headers.get("Connection") != "close"
            peers.append(transport.get_extra_info("peername"))
        assert len(set(peers)) == 1
    finally:
        await fetcher.close()


async def test_an_error_answer_read_whole_keeps_its_connection(server: FeedServer, base: str) -> None:
    """A 404 or 500 with a short body is read to its end: the connection goes back to the pool.
    One with more than the sniffed prefix is not read further: its connection is closed."""
    fetcher = await fetcher_for(fetch_config(retries=0))
    try:
        # the first fetch of the origin asks to close (nothing says it is fetched again soon)
        for path in ("/404", "/404", "/500", "/404"):
            result = await fetcher.fetch(feed(f"{base}{path}"))
            assert result.outcome is not Outcome.OK and result.status in (404, 500)
        transports = [r.transport for r in server.requests[1:]]
        assert len({t.get_extra_info("peername") for t in transports if t is not None}) == 1
        assert all(r.headers.get("Connection") != "close" for r in server.requests[1:])
        # an error page longer than the sniffed prefix: the rest is never read, the socket goes
        before = server.peers[-1]
        server.body = b"<html>" + b"x" * (1 << 20) + b"</html>"
        assert (await fetcher.fetch(feed(f"{base}/big-error"))).status == 500
        assert (await fetcher.fetch(feed(f"{base}/404"))).status == 404
        assert server.peers[-2] == before and server.peers[-1] != before
    finally:
        await fetcher.close()


async def test_past_the_idle_budget_new_connections_close(server: FeedServer, base: str) -> None:
    """Origins fetched again soon each keep a connection until the budget is spent."""
    names = {f"h{n}.test": "127.0.0.1" for n in range(4)}
    fetcher = await fetcher_for(fetch_config(max_idle_connections=2), names)
    assert server.server is not None and server.server.runner is not None
    web_server = server.server.runner.server
    assert web_server is not None
    try:
        for n in range(4):  # the first fetch of each: nothing says it is fetched again soon
            result = await fetcher.fetch(feed(f"http://h{n}.test:{server.port}/etag"))
            assert result.outcome is Outcome.OK
            assert server.requests[-1].headers.get("Connection") == "close"
        for n in range(4):  # fetched again within the keep-alive: kept, while the budget lasts
            result = await fetcher.fetch(feed(f"http://h{n}.test:{server.port}/etag"))
            assert result.outcome is Outcome.OK
            assert (server.requests[-1].headers.get("Connection") == "close") is (n >= 2)
        deadline = time.monotonic() + 2
        while len(web_server.connections) > 2:
            assert time.monotonic() < deadline, f"{len(web_server.connections)} connections open"
            await asyncio.sleep(0.02)
        # the two kept are reused
        assert (await fetcher.fetch(feed(f"http://h0.test:{server.port}/etag"))).outcome is Outcome.OK
        assert server.requests[-1].headers.get("Connection") != "close"
    finally:
        await fetcher.close()


async def test_proxy(server: FeedServer, base: str) -> None:
    resolver_names: dict[str, str] = {}  # the feed's host is never resolved: the proxy is dialled
    fetcher = await fetcher_for(fetch_config(proxy=base), resolver_names)
    try:
        result = await fetcher.fetch(feed("http://feeds.example.test/etag"))
        assert result.outcome is Outcome.OK and result.body == RSS_V1
        assert server.requests[-1].headers["Host"] == "feeds.example.test"
    finally:
        await fetcher.close()


# --- the private-network guard, with loopback only ---------------------------------------


async def test_guard_refuses_loopback_before_any_request(server: FeedServer, base: str) -> None:
    fetcher = await fetcher_for(fetch_config(allow_private_networks=False))
    try:
        result = await fetcher.fetch(feed(f"{base}/etag"))
        assert result.outcome is Outcome.BLOCKED and "loopback" in (result.reason or "")
        assert result.attempts == 1 and not server.requests
    finally:
        await fetcher.close()


async def test_guard_checks_the_resolved_address_not_the_name(server: FeedServer) -> None:
    """DNS rebinding: a public-looking name that resolves to loopback is refused at connect."""
    names = {"rebind.test": "127.0.0.1"}
    blocked = await fetcher_for(fetch_config(allow_private_networks=False), names)
    allowed = await fetcher_for(fetch_config(allow_private_networks=True), names)
    try:
        url = f"http://rebind.test:{server.port}/etag"
        refused = await blocked.fetch(feed(url))
        assert refused.outcome is Outcome.BLOCKED and not server.requests
        served = await allowed.fetch(feed(url))
        assert served.outcome is Outcome.OK and served.body == RSS_V1
    finally:
        await blocked.close()
        await allowed.close()


async def test_guard_rechecks_every_redirect_target(server: FeedServer, base: str) -> None:
    """127.0.0.1 is let through by allowed_networks; its redirect to 127.0.0.2 is not."""
    fetcher = await fetcher_for(
        fetch_config(allow_private_networks=False, allowed_networks=["127.0.0.1/32"]),
        {"second.test": "127.0.0.2"},
    )
    try:
        direct = await fetcher.fetch(feed(f"{base}/etag"))
        assert direct.outcome is Outcome.OK
        moved = await fetcher.fetch(feed(f"{base}/to/second.test"))
        assert moved.outcome is Outcome.BLOCKED and "127.0.0.2" in (moved.reason or "")
        assert [r.path for r in server.requests] == ["/etag", "/to/second.test"]
    finally:
        await fetcher.close()
