"""The ops listener: /metrics, /livez and /readyz, served by aiohttp in the daemon's own loop.

Same loop on purpose: if the loop is blocked (a parse hogging it, a sync call) /livez stops
answering, which is exactly what a liveness probe should see.  It starts before the broker
and the stages, so /livez answers during start-up and /readyz says what is still missing.

The broker check is a metadata request every few seconds from a client of its own: the
stages' clients retry quietly inside aiokafka, so their being "started" proves nothing
about the broker being there now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiokafka.client import AIOKafkaClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingestor.kafka import KafkaConnection
from ingestor.ops import metrics
from ingestor.ops.readiness import ConsumerSnapshot, FetchSnapshot, Snapshot, Thresholds, Verdict, decide

log = structlog.get_logger("ingestor.ops")

_HEARTBEAT_S = 0.5


class DaemonView(Protocol):
    """What the ops server reads from the daemon (``ingestor.tools.daemon.Daemon``)."""

    @property
    def stage_names(self) -> Sequence[str]: ...
    @property
    def stages(self) -> Mapping[Any, object]: ...
    @property
    def connection(self) -> KafkaConnection | None: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9108``, ``[::1]:9108``, ``:9108`` (all interfaces); port 0 picks a free one."""
    host, sep, port_text = listen.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"ops.listen {listen!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


class BrokerProbe:
    """A metadata request every ``interval`` seconds; remembers the last success and error."""

    def __init__(self, daemon: DaemonView, *, interval: float = 5.0, timeout: float = 5.0) -> None:
        self._daemon = daemon
        self._interval = interval
        self._timeout = timeout
        self._client: AIOKafkaClient | None = None
        self.ok_at: float | None = None
        self.error: str | None = None

    async def run(self) -> None:
        try:
            while True:
                await self.check()
                # Retry quickly while failing: readiness should follow a recovery within a second.
                await asyncio.sleep(self._interval if self.ok_at is not None else min(1.0, self._interval))
        finally:
            await self._drop_client()

    async def check(self) -> None:
        connection = self._daemon.connection
        if connection is None:
            self.error = "broker not configured yet (daemon starting)"
            return
        try:
            if self._client is None:
                kwargs = connection.client_kwargs()
                kwargs["client_id"] = f"{connection.config.client_id}-ops"
                self._client = AIOKafkaClient(**kwargs)
                await asyncio.wait_for(self._client.bootstrap(), self._timeout)
            await asyncio.wait_for(self._client.fetch_all_metadata(), self._timeout)
        except Exception as exc:
            if self.error is None or self.ok_at is not None:
                log.warning("broker_unreachable", error=f"{type(exc).__name__}: {exc}")
            self.error = f"{type(exc).__name__}: {exc}"
            self.ok_at = None
            metrics.BROKER_UP.set(0)
            await self._drop_client()  # a fresh client re-bootstraps from the configured servers
            return
        self.ok_at, self.error = time.time(), None
        metrics.BROKER_UP.set(1)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


def snapshot_of(daemon: DaemonView, probe: BrokerProbe, now: float | None = None) -> Snapshot:
    consumers: list[ConsumerSnapshot] = []
    fetch: FetchSnapshot | None = None
    for name, stage in list(daemon.stages.items()):
        loop = metrics.consume_loop_of(stage)
        if loop is not None:
            stats = loop.stats
            consumers.append(
                ConsumerSnapshot(
                    stage=str(name),
                    running=loop.running,
                    connected=stats.connected,
                    assigned=len(stats.assigned),
                    assigned_at=stats.assigned_at,
                    last_poll_at=stats.last_poll_at,
                    last_batch_at=stats.last_batch_at,
                    lag=sum(stats.lag.values()),
                    broker_ok=bool(getattr(stats, "broker_ok", True)),
                    last_error=getattr(stats, "last_error", None),
                )
            )
        health = metrics.fetch_health_of(stage)
        if health is not None:
            fetch = FetchSnapshot(
                running=health.running,
                ready=bool(getattr(health, "ready", health.running)),
                overdue_seconds=health.overdue_seconds,
            )
    return Snapshot(
        now=time.time() if now is None else now,
        expected_stages=tuple(daemon.stage_names),
        started_stages=tuple(str(name) for name in daemon.stages),
        broker_ok_at=probe.ok_at,
        broker_error=probe.error,
        consumers=tuple(consumers),
        fetch=fetch,
    )


class OpsServer:
    """Binds ``listen``, serves the three endpoints, runs the broker probe and loop heartbeat."""

    def __init__(
        self,
        listen: str,
        daemon: DaemonView,
        *,
        thresholds: Thresholds | None = None,
        probe_interval: float = 5.0,
    ) -> None:
        self._host, self._port = parse_listen(listen)
        self._daemon = daemon
        self._thresholds = thresholds or Thresholds()
        self.probe = BrokerProbe(daemon, interval=probe_interval)
        self._collector = metrics.StageCollector(lambda: dict(daemon.stages))
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.loop_lag = 0.0

    def verdict(self) -> Verdict:
        verdict = decide(snapshot_of(self._daemon, self.probe), self._thresholds)
        metrics.READY.set(int(verdict.ready))
        return verdict

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(
                exc.errno,
                f"ops.listen {self._host}:{self._port}: {exc.strerror or exc} (is another instance using "
                "the port? set ops.listen, or INGESTOR_OPS__LISTEN, per instance)",
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        metrics.REGISTRY.register(self._collector)
        self._tasks = [
            asyncio.create_task(self.probe.run(), name="ops-broker-probe"),
            asyncio.create_task(self._heartbeat(), name="ops-heartbeat"),
        ]
        log.info("ops_listening", host=self._host, port=self.port, paths=["/metrics", "/livez", "/readyz"])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(KeyError):
            metrics.REGISTRY.unregister(self._collector)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(_HEARTBEAT_S)
            self.loop_lag = max(0.0, loop.time() - started - _HEARTBEAT_S)
            metrics.EVENT_LOOP_LAG.set(self.loop_lag)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.verdict()  # keeps ingestor_ready current for scrapers that never call /readyz
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _livez(self, request: web.Request) -> web.Response:
        # Answering at all is the proof: this handler runs on the daemon's event loop.
        return web.json_response({"alive": True, "event_loop_lag_s": round(self.loop_lag, 4)})

    async def _readyz(self, request: web.Request) -> web.Response:
        verdict = self.verdict()
        return web.json_response(verdict.to_json(), status=200 if verdict.ready else 503)
