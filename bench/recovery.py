"""Recovery after a crash: how long a SIGKILLed, at once restarted daemon takes to publish again.

    python bench/recovery.py                          # before, then now; 4 kills 20 s apart
    python bench/recovery.py --modes static --restarts 8 --every 20

A loopback live page gains a fragment every second.  ``ingestor run`` (all three stages, one
process) polls it every second and publishes each fragment once.  The broker is ``ingestor
broker`` in a process of its own, so it (and the consumer groups on it) outlives the daemon,
as a real cluster would; the daemon's own embedded broker would die with it.  Once the
pipeline publishes, the daemon is SIGKILLed and restarted at once, ``--restarts`` times,
``--every`` seconds apart, whatever state it is in.

Per restart it prints the time from the kill to the first fragment published after it (the
published message's timestamp, set by the restarted daemon's producer, minus the kill time;
both on this machine's clock), and from the daemon's own log lines the time to its first
fetch and to each stage's group join.  At the end of each mode: the median and the worst, and
every fragment the page showed checked against ``news.published``: lost (not published
within 2 minutes of the last one) and duplicated (published more than once).  Fragments are
never edited, so each must be published exactly once.

Each mode runs against the same broker with its own topics and groups:

* ``before``: the settings before issue 15 (dynamic members, 10 s sessions with 3 s
  heartbeats, aiokafka's 500 ms fetch wait);
* ``dynamic``: today's settings but dynamic members (``kafka.static_membership: false``);
* ``static``: today's defaults.

Numbers on a machine shared with other work are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ingestor.kafka.embedded import free_port

HEAD = (
    "date 2024-11-04 Skip to content\n"
    "Recovery bench: a live page that never stops\n\n"
    "by Bench Desk November 4, 2024 9:15 AM 1 min read\n\n"
    "The page gains a post every second while the daemon is killed and restarted.\n\n"
)
#: after the last fragment, how long the pipeline gets to publish everything the page showed
CATCH_UP_S = 120.0
WINDOW = 300  # fragments shown on the page: none scrolls off during a run
MAX_FRAGMENTS = 1400  # one per minute of the capture day
TITLE = re.compile(r"^Fragment (\d{1,5})\.$")
STAGE_EVENTS = {"partitions_assigned": "stage", "feeds_assigned": None}


def _clock(minute: int) -> str:
    hour, minute = divmod(minute, 60)
    return f"{(hour % 12) or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


class LivePage:
    """One page per mode, gaining a fragment every ``every`` seconds while it runs."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.fragments: dict[str, list[tuple[int, float]]] = {}  # path -> (number, added at)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/live/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port("127.0.0.1")
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def begin(self, name: str) -> str:
        self.fragments[name] = []
        self._tasks[name] = asyncio.create_task(self._grow(name))
        return f"http://127.0.0.1:{self.port}/live/{name}"

    def end(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def _grow(self, name: str) -> None:
        while len(self.fragments[name]) < MAX_FRAGMENTS:
            self.fragments[name].append((len(self.fragments[name]), time.time()))
            await asyncio.sleep(self.every)

    async def _serve(self, request: web.Request) -> web.Response:
        shown = self.fragments.get(request.match_info["name"], [])[-WINDOW:]
        posts = "".join(
            f"{_clock(n)}\u00a0 (Updated:\u00a0)\n\nFragment {n}.\n\nPost {n} of the recovery bench.\n"
            for n, _ in reversed(shown)
        )
        return web.Response(body=(HEAD + posts).encode(), content_type="text/plain", charset="utf-8")

    async def stop(self) -> None:
        for name in list(self._tasks):
            self.end(name)
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Published:
    number: int
    timestamp: float  # the message's (producer) timestamp, seconds
    received: float


@dataclass
class Restart:
    killed_at: float
    first_publish: float | None = None
    first_fetch: float | None = None
    started: float | None = None  # daemon_started
    restore_s: float | None = None  # dedup's state restore
    joins: dict[str, float] = field(default_factory=dict)


#: per mode, what its config sets beyond the common part (``before``: the old defaults)
MODES: dict[str, dict[str, dict[str, Any]]] = {
    "before": {
        "kafka": {
            "static_membership": False,
            "session_timeout": 10,
            "heartbeat_interval": 3,
            "max_wait": 0.5,
        },
        "fetch": {"session_timeout": 10, "heartbeat_interval": 3},
    },
    "dynamic": {"kafka": {"static_membership": False}},
    "static": {},
}


def _config(workdir: Path, tag: str, bootstrap: str, url: str, mode: str) -> Path:
    data: dict[str, Any] = {
        # max_wait: what `ingestor run` uses on its own embedded (memory) broker, which this one is
        "kafka": {
            "bootstrap_servers": bootstrap,
            "max_wait": 0.05,
            "embedded": {"state_dir": str(workdir / "state")},
        },
        "topics": {
            "raw": f"r{tag}.raw",
            "items": f"r{tag}.items",
            "published": f"r{tag}.published",
            "dlq": f"r{tag}.dlq",
            "feeds": f"r{tag}.feeds",
            "article_requests": f"r{tag}.article-requests",
        },
        "fetch": {
            "allow_private_networks": True,
            "state_topic": f"r{tag}.fetch-state",
            "group_id": f"r{tag}-fetch",
        },
        "full_text": {"state_topic": f"r{tag}.article-state", "group_id": f"r{tag}-articles"},
        "parse": {"group_id": f"r{tag}-parse"},
        "dedup": {"group_id": f"r{tag}-dedup"},
        "logging": {"level": "INFO", "format": "json"},
        "ops": {"listen": None},
        "feeds": [
            {
                "id": "live",
                "url": url,
                "timezone": "UTC",
                "interval": "1s",
                "format": "text",
                "language": "en",
            }
        ],
    }
    for section, values in MODES[mode].items():
        data[section] = {**data[section], **values}
    path = workdir / f"config-{tag}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _spawn(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ingestor",
            *args,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )


async def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Watcher:
    """Reads news.published from the beginning, group-less, for the whole mode."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: list[Published] = []
        self._bootstrap = bootstrap
        self._topic = topic
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:  # the daemon creates the topic; a new client sees it in its bootstrap metadata
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, fetch_max_wait_ms=100)
            with contextlib.suppress(KafkaError):
                await consumer.start()
                if partitions := consumer.partitions_for_topic(self._topic):
                    break
            await asyncio.sleep(0.1)  # aiokafka 0.14: a stop right after the start re-raises a cancel
            await consumer.stop()
            await asyncio.sleep(0.5)
        try:
            consumer.assign([TopicPartition(self._topic, p) for p in sorted(partitions)])
            await consumer.seek_to_beginning()
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        self._take(record.value, record.timestamp)
        finally:
            await consumer.stop()

    def _take(self, value: bytes | None, timestamp_ms: int) -> None:
        try:
            item = json.loads(value or b"")
        except ValueError:
            return
        match = TITLE.match(str(item.get("title", ""))[:40])
        if item.get("kind") == "live_update" and match:
            self.seen.append(Published(int(match.group(1)), timestamp_ms / 1000, time.time()))

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def _log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and "ts" in event:
                    event["at"] = datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()
                    events.append(event)
    return events


def _read_restart(restart: Restart, log_path: Path) -> None:
    for event in _log_events(log_path):
        name = event.get("event")
        if name == "feed_fetched" and restart.first_fetch is None:
            restart.first_fetch = event["at"]
        elif name == "daemon_started" and restart.started is None:
            restart.started = event["at"]
        elif name == "dedup_state_restored" and restart.restore_s is None:
            restart.restore_s = float(event.get("duration_ms") or 0) / 1000
        elif name == "partitions_assigned" and event.get("partitions"):
            restart.joins.setdefault(str(event.get("stage")), event["at"])
        elif name == "feeds_assigned" and event.get("partitions"):
            restart.joins.setdefault("fetch", event["at"])


def _fmt(seconds: float | None) -> str:
    return f"{seconds:5.1f}" if seconds is not None else "    -"


class Runner:
    """The mode's `ingestor run`, restarted by hand; whatever runs is killed at the end."""

    def __init__(self, config: Path, workdir: Path, tag: str) -> None:
        self.config = config
        self.workdir = workdir
        self.tag = tag
        self.process: asyncio.subprocess.Process | None = None
        self.logs: list[Path] = []

    async def start(self) -> None:
        log_path = self.workdir / f"{self.tag}-daemon-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        self.process = await _spawn(["run", "--config", str(self.config)], log_path)

    async def sigkill(self) -> float:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        await self.process.wait()
        return killed_at

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 15)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_mode(
    mode: str, bootstrap: str, page: LivePage, workdir: Path, restarts: int, every: float, settle: float
) -> dict[str, Any]:
    tag = f"{mode[0]}{uuid.uuid4().hex[:6]}"
    url = page.begin(tag)
    runner = Runner(_config(workdir, tag, bootstrap, url, mode), workdir, tag)
    watcher = Watcher(bootstrap, f"r{tag}.published")
    try:
        await runner.start()
        deadline = time.monotonic() + 120
        while not watcher.seen and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if not watcher.seen:
            raise RuntimeError(f"{mode}: nothing published in 120 s; see {runner.logs[-1]}")
        print(f"[{mode}] publishing; killing every {every:g} s, {restarts} times", flush=True)
        results: list[Restart] = []
        for _ in range(restarts):
            await asyncio.sleep(every)
            results.append(Restart(await runner.sigkill()))
            await runner.start()
        # after the last restart: wait for it to publish (up to 60 s), then for the backlog
        last = results[-1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p.timestamp >= last.killed_at for p in watcher.seen):
            await asyncio.sleep(0.2)
        await asyncio.sleep(settle)
        page.end(tag)
        expected_upto = len(page.fragments[tag]) - 1
        # every fragment the page showed must come out: wait for the stragglers (a slow recovery
        # is not a loss), then call what is still missing lost
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline and len({p.number for p in watcher.seen}) <= expected_upto:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # a duplicate would show up now
        await runner.stop()
        await asyncio.sleep(1)
    finally:
        page.end(tag)
        await runner.stop()
        await watcher.stop()
    return _report(mode, results, runner.logs[1:], watcher.seen, expected_upto, every)


def _report(
    mode: str,
    results: list[Restart],
    logs: list[Path],
    seen: list[Published],
    expected_upto: int,
    every: float,
) -> dict[str, Any]:
    ends = [r.killed_at for r in results[1:]] + [float("inf")]
    for restart, end, path in zip(results, ends, logs, strict=True):
        after = [p.timestamp for p in seen if restart.killed_at <= p.timestamp < end]
        restart.first_publish = min(after) if after else None
        _read_restart(restart, path)
    counts: dict[int, int] = {}
    for published in seen:
        counts[published.number] = counts.get(published.number, 0) + 1
    lost = [n for n in range(expected_upto + 1) if n not in counts]
    duplicated = {n: c for n, c in counts.items() if c > 1}

    print(f"[{mode}] restart  kill->publish  kill->fetch  started  restore  group joins (s after the kill)")
    delays: list[float] = []
    for i, restart in enumerate(results, 1):
        delay = restart.first_publish - restart.killed_at if restart.first_publish is not None else None
        if delay is not None:
            delays.append(delay)
        fetch = restart.first_fetch - restart.killed_at if restart.first_fetch is not None else None
        joins = "  ".join(
            f"{stage} {at - restart.killed_at:4.1f}" for stage, at in sorted(restart.joins.items())
        )
        shown = _fmt(delay) if delay is not None else f"none in {every:g} s"
        up = restart.started - restart.killed_at if restart.started is not None else None
        columns = f"{shown:>13}  {_fmt(fetch):>11}  {_fmt(up):>7}  {_fmt(restart.restore_s):>7}"
        print(f"[{mode}] {i:7d}  {columns}  {joins}")
    missing = len(results) - len(delays)
    summary = {
        "mode": mode,
        "restarts": len(results),
        "median_s": round(statistics.median(delays), 2) if delays and not missing else None,
        "worst_s": round(max(delays), 2) if delays and not missing else None,
        "restarts_without_publish": missing,
        "fragments": expected_upto + 1,
        "lost": len(lost),
        "duplicated": len(duplicated),
    }
    worst = "no publication before the next kill" if missing else f"{summary['worst_s']} s"
    print(
        f"[{mode}] median {summary['median_s']} s, worst {worst}; fragments 0..{expected_upto}: "
        f"lost {len(lost)}{' ' + str(lost[:10]) if lost else ''}, "
        f"duplicated {len(duplicated)}{' ' + str(dict(list(duplicated.items())[:10])) if duplicated else ''}",
        flush=True,
    )
    return summary


async def main(args: argparse.Namespace, workdir: Path) -> int:
    print(f"logs in {workdir}", flush=True)
    port = free_port("127.0.0.1")
    broker = await _spawn(["broker", "--port", str(port), "--log-format", "json"], workdir / "broker.log")
    page = LivePage(args.fragment_every)
    summaries = []
    try:
        await _wait_port(port, 60)
        await page.start()
        for mode in args.modes.split(","):
            summaries.append(
                await run_mode(
                    mode, f"127.0.0.1:{port}", page, workdir, args.restarts, args.every, args.settle
                )
            )
    finally:
        await page.stop()
        if broker.returncode is None:
            broker.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(broker.wait(), 15)
            if broker.returncode is None:
                broker.kill()
    print(json.dumps(summaries))
    bad = any(s["lost"] or s["duplicated"] for s in summaries)
    return 1 if bad else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", default="before,static", help="comma-separated: before, dynamic, static")
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--fragment-every", type=float, default=1.0, help="seconds between new fragments")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds the page keeps growing after the last restart"
    )
    parser.add_argument("--workdir", help="where configs and logs go (default: a new temporary folder)")
    args = parser.parse_args(argv)
    for mode in args.modes.split(","):
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    folder = Path(arguments.workdir or tempfile.mkdtemp(prefix="recovery-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(arguments, folder)))
