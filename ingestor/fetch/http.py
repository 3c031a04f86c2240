"""One HTTP fetch of one feed, safe against hostile servers, as a pure ``FetchResult``.

Everything a server can abuse is bounded here: connect, between-bytes and total time;
the body size *after* decompression (measured while streaming, so a gzip bomb is cut off
after a few tens of KiB of input, never inflated in full); the number of redirects (each
hop followed by hand so that loops are named, credentials stay on their origin and every
target goes through the connect-time guard again).  ``fetch`` never raises for anything a
server or the network does: it returns a classified result, so the caller can stay simple.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import resource
import socket
import ssl
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from yarl import URL

from ingestor import __version__
from ingestor.config import FetchConfig
from ingestor.fetch import guard
from ingestor.fetch.feedspec import AnyFeed, FeedSpec, start_url
from ingestor.fetch.hints import NO_HINTS, Hints, from_response
from ingestor.fetch.keepalive import IdleConnectionBudget, Origin
from ingestor.fetch.outcome import (
    Outcome,
    bot_wall,
    classify_status,
    dns_transient,
    not_a_feed,
    retry_in_fetch,
)
from ingestor.secrets import SecretPolicy, SecretUnavailable, mask_url, origin_of

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
#: How much of an error response is read, to tell a bot wall from a plain error.
_ERROR_SNIFF_BYTES = 64 * 1024
_FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
_PAGE_ACCEPT = "text/html, application/xhtml+xml, text/plain;q=0.9, */*;q=0.8"


@dataclass(frozen=True, slots=True)
class Validators:
    """Conditional-GET state remembered from the last produced body."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch (all its in-fetch retries included) came to; ``body`` only when ``ok``."""

    feed_id: str
    url: str
    final_url: str
    outcome: Outcome
    reason: str | None
    status: int | None
    fetched_at: datetime
    duration_ms: float
    attempts: int = 1
    redirects: int = 0
    body: bytes | None = None
    bytes_read: int = 0
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    hints: Hints = field(default_factory=Hints)
    links: str | None = None  # the Link headers, joined: where WebSub hubs are announced


@dataclass(slots=True)
class _Attempt:
    result: FetchResult
    retry: bool = False


def classify_exception(exc: BaseException) -> tuple[Outcome, str, bool]:
    """(outcome, reason, worth retrying now) for anything aiohttp or the network raised."""
    text = str(exc)
    chain: list[BaseException] = []
    cursor: BaseException | None = exc
    while cursor is not None and len(chain) < 8:
        chain.append(cursor)
        if isinstance(cursor, aiohttp.ClientConnectorError):
            chain.append(cursor.os_error)
        cursor = cursor.__cause__ or cursor.__context__
    if any(isinstance(e, guard.GuardRefused) or guard.GUARD_MARK in str(e) for e in chain):
        refused = next((e for e in chain if isinstance(e, guard.GuardRefused)), None)
        return Outcome.BLOCKED, str(refused) if refused else text, False
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        number = exc.os_error.errno
        return Outcome.DNS, f"dns: {exc.os_error.strerror or exc.os_error}", dns_transient(number)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return Outcome.TLS, f"certificate: {exc.certificate_error}", False
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return Outcome.TLS, f"tls: {text}", False
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Outcome.TIMEOUT, "connect timeout", True
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return Outcome.TIMEOUT, "read timeout (no byte within the read timeout)", True
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT, "total timeout", True
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return Outcome.CONNECT, f"proxy: {exc.os_error}", True
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome.CONNECT, f"connect: {exc.os_error.strerror or exc.os_error}", True
    if isinstance(exc, aiohttp.ClientPayloadError):
        encoding = any(type(e).__name__ == "ContentEncodingError" for e in chain)
        if encoding or "content-encoding" in text.lower():
            return Outcome.PROTOCOL, f"bad content encoding: {text}", False
        return Outcome.CONNECT, f"connection broken mid-body: {text}", True
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return Outcome.CONNECT, f"connection lost: {text or type(exc).__name__}", True
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return Outcome.CONNECT, f"proxy refused: {exc.status} {exc.message}", False
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome.PROTOCOL, f"invalid url: {text}", False
    if isinstance(exc, aiohttp.ClientResponseError):
        return Outcome.PROTOCOL, f"malformed response: {exc.message}", False
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Outcome.CONNECT, f"{type(exc).__name__}: {text}", True
    return Outcome.ERROR, f"{type(exc).__name__}: {text}", False


def basic_auth(username: str, password: str) -> str:
    """An ``Authorization: Basic`` value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class _DnsBeforeProxy(OSError):
    """The target of a proxied request could not be resolved here, so it was not checked."""


def _shown(url: URL) -> str:
    """``mask_url`` without parsing the URL again: only a URL with userinfo needs masking."""
    return str(url) if url.raw_user is None and url.raw_password is None else mask_url(str(url))


def _shown_text(url: str) -> str:
    """``mask_url`` of a URL as text, parsing only one that may carry userinfo (an ``@``)."""
    return url if "@" not in url else mask_url(url)


#: the credentials of a feed that has none (only ever read)
_NOTHING_OWN: dict[str, str] = {}


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


#: Descriptors a fetch process needs besides its fetches' and idle connections': the broker's
#: connections, the ops server, logs, the interpreter's own files.
OTHER_DESCRIPTORS = 256


def idle_connections_allowed(config: FetchConfig) -> int:
    """``fetch.max_idle_connections``, or fewer if the open-files limit leaves less room (the
    process raised its limit at start: ``ingestor/tools/fetchers.py``, which also says so)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # no such limit on this platform
        return config.max_idle_connections
    if soft == resource.RLIM_INFINITY:
        return config.max_idle_connections
    room = soft - config.global_concurrency - OTHER_DESCRIPTORS
    return max(0, min(config.max_idle_connections, room))


class Fetcher:
    """Owns the one ``ClientSession`` of a fetcher process; use as an async context manager."""

    def __init__(self, config: FetchConfig, *, resolver: AbstractResolver | None = None) -> None:
        self._config = config
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._allowed = guard.parse_networks(config.allowed_networks)
        self._secrets = SecretPolicy(config.secret_env, config.secret_dirs)
        self._target_resolver: AbstractResolver | None = None  # proxied targets, checked by the guard
        self._own_resolver = False
        self._idle = IdleConnectionBudget(idle_connections_allowed(config), config.keepalive)

    async def start(self) -> None:
        if self._session is not None:
            return
        cfg = self._config
        connector = aiohttp.TCPConnector(
            limit=cfg.global_concurrency,
            limit_per_host=cfg.per_host_concurrency,  # a backstop: the stage gates per host itself
            socket_factory=guard.socket_factory(
                allow_private=cfg.allow_private_networks, allowed=self._allowed
            ),
            resolver=self._resolver,
            ttl_dns_cache=300,
            keepalive_timeout=cfg.keepalive,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,  # the total is enforced around the whole fetch, redirects and body included
                connect=cfg.connect_timeout,
                sock_connect=cfg.connect_timeout,
                sock_read=cfg.read_timeout,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),  # feeds must not be able to track us across hosts
            trust_env=False,  # proxies come from config only, so the guard's picture is complete
            read_bufsize=_CHUNK,
            auto_decompress=True,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        resolver, self._target_resolver = self._target_resolver, None
        if resolver is not None and self._own_resolver:
            await resolver.close()

    async def __aenter__(self) -> Fetcher:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def fetch(
        self, feed: AnyFeed, validators: Validators | None = None, *, max_bytes: int | None = None
    ) -> FetchResult:
        """Fetch once (retrying transient failures in place); never raises but for cancellation.

        ``max_bytes``: a smaller body cap than ``fetch.max_body_bytes`` (robots.txt)."""
        if self._session is None:
            raise RuntimeError("Fetcher.start() was not called")
        validators = validators or Validators()
        started = time.perf_counter()
        cfg = self._config
        # The common case (the first attempt settles it) skips tenacity: its per-call set-up and
        # coroutine introspection cost about a tenth of the CPU of a conditional fetch.
        first = await self._attempt(feed, validators, started, max_bytes)
        if not first.retry or cfg.retries == 0:
            return first.result  # one attempt, its duration measured from ``started`` already
        attempts = 1

        async def attempt() -> _Attempt:
            nonlocal attempts
            attempts += 1
            return await self._attempt(feed, validators, started, max_bytes)

        def give_up(state: RetryCallState) -> _Attempt:
            assert state.outcome is not None
            last: _Attempt = state.outcome.result()
            return last

        await asyncio.sleep(random.uniform(0, min(cfg.retry_backoff, cfg.retry_backoff_max)))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(cfg.retries),
            # full jitter: concurrent fetches that failed together do not retry together; doubled
            # because the first wait (above) was already the first step of the progression
            wait=wait_random_exponential(multiplier=cfg.retry_backoff * 2, max=cfg.retry_backoff_max),
            retry=retry_if_result(lambda a: bool(a.retry)),
            retry_error_callback=give_up,
        )
        outcome: _Attempt = await retrying(attempt)
        result = outcome.result
        return replace(result, attempts=attempts, duration_ms=(time.perf_counter() - started) * 1000)

    def _keep_connection(self, origin: Origin, headers: dict[str, str]) -> bool:
        """Before one request: asks for the connection to be closed afterwards unless the
        idle-connection budget (``ingestor/fetch/keepalive.py``) keeps it; the caller reports
        the request's end with ``self._idle.finish`` (a ``try``/``finally``, cheaper per fetch
        than a generator-based context manager)."""
        keep = self._idle.start(origin, time.monotonic())
        if not keep:
            headers["Connection"] = "close"
        return keep

    def _request_headers(self, feed: AnyFeed, validators: Validators) -> dict[str, str]:
        headers = {
            "User-Agent": feed.user_agent or self._config.user_agent or f"news-ingestor/{__version__}",
            "Accept": _FEED_ACCEPT if feed.format in ("feed", "auto") else _PAGE_ACCEPT,
        }
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        return headers

    def _credentials(self, feed: AnyFeed) -> dict[str, str]:
        """The feed's configured headers and basic auth, resolved: for its own origin only.

        Resolved once per attempt (a rotated secret file is read at the next fetch); raises
        SecretUnavailable naming the field and the reference, never a value.
        """
        own: dict[str, str] = {}
        for name, value in feed.headers.items():
            try:
                own[name] = self._secrets.resolve(value)
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"headers.{name}: {exc}") from None
        if feed.username is not None or feed.password is not None:
            try:
                password = self._secrets.resolve(feed.password) if feed.password is not None else ""
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"password: {exc}") from None
            own["Authorization"] = basic_auth(feed.username or "", password)
        return own

    def _proxy(self, feed: AnyFeed) -> tuple[URL | None, str | None]:
        """The proxy and its ``Proxy-Authorization`` value, if it has credentials."""
        if feed.proxy:
            url = URL(feed.proxy)
            if feed.proxy_username is None and feed.proxy_password is None:
                return url, None
            try:
                password = (
                    self._secrets.resolve(feed.proxy_password) if feed.proxy_password is not None else ""
                )
            except SecretUnavailable as exc:
                raise SecretUnavailable(f"proxy_password: {exc}") from None
            return url, basic_auth(feed.proxy_username or "", password)
        raw = self._config.proxy
        if not raw:
            return None, None
        url = URL(raw)
        if not url.user:
            return url, None
        return url.with_user(None), basic_auth(url.user, url.password or "")

    async def _check_proxied_target(self, url: URL) -> None:
        """The private-network guard for a target we do not dial: the proxy does.

        The connect-time guard only sees the proxy's address, so the target's name is resolved
        here and every address it resolves to is checked (``localhost`` and IP literals need no
        lookup).  A name we cannot resolve is not sent: we could not check it.  The proxy may
        resolve the name differently (split-horizon DNS); docs/security.md says what that leaves.
        """
        cfg = self._config
        if cfg.allow_private_networks:
            return
        host = url.host or ""
        reason = guard.host_refusal(host, allow_private=False, allowed=self._allowed)
        if reason is not None:
            raise guard.GuardRefused(host, reason)
        if guard.is_ip_literal(host):
            return
        if self._target_resolver is None:
            self._own_resolver = self._resolver is None
            self._target_resolver = self._resolver or aiohttp.DefaultResolver()
        try:
            answers = await self._target_resolver.resolve(host, url.port or 0, family=socket.AF_UNSPEC)
        except OSError as exc:
            raise _DnsBeforeProxy(exc.errno, f"{host}: {exc.strerror or exc}") from exc
        if not answers:
            raise _DnsBeforeProxy(socket.EAI_NONAME, f"{host}: no address")
        for answer in answers:
            address = str(answer["host"])
            reason = guard.refusal(address, allow_private=False, allowed=self._allowed)
            if reason is not None:
                raise guard.GuardRefused(address, f"{reason}; {host} via proxy")

    async def _attempt(
        self, feed: AnyFeed, validators: Validators, started: float, max_bytes: int | None = None
    ) -> _Attempt:
        assert self._session is not None
        url = start = start_url(feed)
        redirects = 0

        def failed(
            outcome: Outcome,
            reason: str,
            retry: bool = False,
            status: int | None = None,
            hints: Hints | None = None,
        ) -> _Attempt:
            return _Attempt(
                FetchResult(
                    feed_id=feed.id,
                    url=feed.url,
                    outcome=outcome,
                    reason=reason,
                    status=status,
                    fetched_at=datetime.now(UTC),
                    duration_ms=(time.perf_counter() - started) * 1000,
                    redirects=redirects,
                    hints=hints or Hints(),
                    final_url=_shown(url),
                ),
                retry=retry,
            )

        if isinstance(feed, FeedSpec) and feed.options.plain and not self._config.proxy:
            own, proxy, proxy_authorization = _NOTHING_OWN, None, None  # most feeds: nothing to resolve
        else:
            try:
                own = self._credentials(feed)
                proxy, proxy_authorization = self._proxy(feed)
            except SecretUnavailable as exc:
                return failed(Outcome.SECRET, f"secret {exc}")
        seen: set[str] = set()  # the URLs asked for, filled once there is a redirect
        try:
            async with asyncio.timeout(self._config.total_timeout):
                while True:
                    headers = self._request_headers(feed, validators)
                    # a redirect off the origin leaves credentials behind (no parsing without any)
                    if own and (url is start or origin_of(url) == origin_of(start)):
                        headers.update(own)
                    proxy_headers = None
                    if proxy is not None:
                        await self._check_proxied_target(url)
                        if proxy_authorization is not None:
                            # aiohttp sends proxy_headers with a CONNECT only: a plain-http request
                            # through the proxy carries it itself (the proxy consumes it, hop by hop)
                            if url.scheme == "https":
                                proxy_headers = {"Proxy-Authorization": proxy_authorization}
                            else:
                                headers["Proxy-Authorization"] = proxy_authorization
                    origin = (url.scheme, url.raw_host, url.explicit_port)
                    keep = self._keep_connection(origin, headers)
                    try:
                        async with self._session.get(
                            url,
                            headers=headers,
                            proxy=proxy,
                            proxy_headers=proxy_headers,
                            allow_redirects=False,
                        ) as response:
                            location = response.headers.get("Location")
                            if response.status in _REDIRECTS and location:
                                try:
                                    target = response.url.join(URL(location))
                                except ValueError:
                                    return failed(
                                        Outcome.PROTOCOL,
                                        f"bad redirect location {location!r}",
                                        status=response.status,
                                    )
                                if target.scheme not in ("http", "https"):
                                    return failed(
                                        Outcome.PROTOCOL,
                                        f"redirect to a {target.scheme!r} URL",
                                        status=response.status,
                                    )
                                seen.add(str(url))
                                if str(target) in seen:
                                    return failed(
                                        Outcome.REDIRECT_LOOP,
                                        f"redirect loop back to {target}",
                                        status=response.status,
                                    )
                                if redirects >= self._config.max_redirects:
                                    return failed(
                                        Outcome.REDIRECT_LOOP,
                                        f"more than {self._config.max_redirects} redirects",
                                        status=response.status,
                                    )
                                seen.add(str(target))
                                url = target
                                redirects += 1
                                continue
                            return await self._read(feed, response, validators, started, redirects, max_bytes)
                    finally:
                        self._idle.finish(origin, time.monotonic(), keep)
        except asyncio.CancelledError:
            raise
        except _DnsBeforeProxy as exc:
            return failed(Outcome.DNS, f"dns (before the proxy): {exc.strerror}", dns_transient(exc.errno))
        except Exception as exc:  # everything a server or the network can do ends up classified
            outcome, reason, retry = classify_exception(exc)
            return failed(outcome, reason, retry)

    async def _read(
        self,
        feed: AnyFeed,
        response: aiohttp.ClientResponse,
        validators: Validators,
        started: float,
        redirects: int,
        max_bytes: int | None = None,
    ) -> _Attempt:
        cfg = self._config
        cap = min(max_bytes, cfg.max_body_bytes) if max_bytes else cfg.max_body_bytes
        headers = response.headers  # case-insensitive: read with lower-case names
        now = datetime.now(UTC)
        status = response.status
        # without a redirect the final URL is the feed's own (as configured, masked), not yarl's
        # re-serialisation of it: one str() of a URL less per fetch, and no spurious difference
        final_url = _shown(response.url) if redirects else _shown_text(feed.url)
        content_type = headers.get("content-type")
        etag, last_modified = headers.get("etag"), headers.get("last-modified")
        links = ", ".join(headers.getall("link", ())) or None

        def done(
            outcome: Outcome,
            reason: str | None = None,
            *,
            hints: Hints = NO_HINTS,
            bytes_read: int = 0,
            body: bytes | None = None,
            sha256: str | None = None,
            etag: str | None = etag,
            last_modified: str | None = last_modified,
        ) -> FetchResult:
            return FetchResult(
                feed.id, feed.url, final_url, outcome, reason, status, now,
                (time.perf_counter() - started) * 1000, 1, redirects, body, bytes_read, content_type,
                etag, last_modified, sha256, hints, links,
            )  # fmt: skip

        if status == 304:
            return _Attempt(
                done(
                    Outcome.NOT_MODIFIED,
                    etag=etag or validators.etag,
                    last_modified=last_modified or validators.last_modified,
                    hints=from_response(headers, None, now),
                )
            )
        if 200 <= status < 300:
            declared = response.content_length
            if declared is not None and "content-encoding" not in headers and declared > cap:
                response.close()
                reason = f"content-length {declared} over {cap}"
                return _Attempt(done(Outcome.TOO_LARGE, reason))
            body, complete = await _read_capped(response, cap)
            if not complete:
                response.close()
                return _Attempt(
                    done(
                        Outcome.TOO_LARGE,
                        f"body over {cap} bytes after decompression",
                        bytes_read=len(body),
                    )
                )
            wall = bot_wall(headers, body)
            if wall:
                return _Attempt(done(Outcome.NOT_A_FEED, f"bot wall ({wall})", bytes_read=len(body)))
            if not body:
                return _Attempt(done(Outcome.NOT_A_FEED, "empty body"))
            if feed.format == "feed":
                why = not_a_feed(headers.get("content-type"), body)
                if why:
                    return _Attempt(done(Outcome.NOT_A_FEED, why, bytes_read=len(body)))
            return _Attempt(
                done(
                    Outcome.OK,
                    body=body,
                    bytes_read=len(body),
                    sha256=_sha256(body),
                    hints=from_response(headers, body, now),
                )
            )
        hints = from_response(headers, None, now)
        try:
            sniff = await _read_prefix(response, _ERROR_SNIFF_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            sniff = b""
        response.close()
        wall = bot_wall(headers, sniff)
        if wall:
            return _Attempt(done(Outcome.NOT_A_FEED, f"bot wall ({wall}), status {status}", hints=hints))
        outcome, why = classify_status(status)
        return _Attempt(
            done(outcome, why, hints=hints, bytes_read=len(sniff)),
            retry=retry_in_fetch(outcome, status, hints.retry_after),
        )


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The decompressed body, or (what was read, False) as soon as it would exceed ``cap``.

    aiohttp inflates in bounded steps with back-pressure (>= 3.13.3), so memory stays near
    one chunk beyond what we keep; what we keep is capped here.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            return b"", False
        chunks.append(chunk)
    return b"".join(chunks), True


async def _read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body: enough to recognise a bot wall, never a whole error page."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
