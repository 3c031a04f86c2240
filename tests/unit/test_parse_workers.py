"""The parse worker pool: a stalled parse is killed at its deadline and its worker replaced, a
crashed worker is reported as such, and neither the event loop nor shutdown waits for either."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from aiokafka import ConsumerRecord
from structlog.testing import capture_logs

from consumers.parse import ParseLimits, RawDocument, service
from consumers.parse.service import ParseStage
from consumers.parse.workers import (
    Parsed,
    Unparsable,
    WorkerCrashed,
    WorkerInterrupted,
    WorkerPool,
    WorkerTimeout,
    parse_job,
)
from ingestor import headers as hdr
from ingestor.config import ConfigError, load_settings
from ingestor.consumer_loop import Refused
from ingestor.ops import metrics

# ---- what the workers run (module level: they are pickled by reference) ------------------------


def pid() -> int:
    return os.getpid()


def spin() -> None:
    """A pure-Python loop that never ends: it holds the GIL between bytecodes only."""
    while True:
        pass


def catastrophic_regex() -> object:
    """Exponential backtracking inside the C regex engine: no signal handler runs until it ends."""
    return re.match(r"(a|a)*b", "a" * 40)


def exit_hard() -> None:
    os._exit(3)


def segfault() -> None:
    ctypes.string_at(0)


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x/</link>
<item><guid>a-1</guid><title>Harbour reopens</title><link>http://x/a/1</link>
<description>The harbour reopened on Monday.</description></item></channel></rss>"""


def _doc(body: bytes) -> RawDocument:
    return RawDocument(
        body=body, url="http://x/feed", feed_id="f", fetched_at=datetime(2024, 11, 4, tzinfo=UTC)
    )


@pytest.fixture
def restarts() -> list[str]:
    return []


@pytest.fixture
def pool(restarts: list[str]) -> Iterator[WorkerPool]:
    workers = WorkerPool(1, memory_limit=512 * 1024**2, on_restart=restarts.append)
    workers.start_sync()
    yield workers
    workers.close_sync()


def _alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{process_id}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stall", [spin, catastrophic_regex], ids=["python-loop", "c-regex"])
def test_a_stall_times_out_at_the_deadline_and_the_worker_is_replaced(
    pool: WorkerPool, restarts: list[str], stall: object
) -> None:
    async def scenario() -> None:
        before = await pool.run(pid, timeout=5)
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            await pool.run(stall, timeout=0.5)  # type: ignore[arg-type]
        took = time.monotonic() - started
        assert 0.5 <= took < 1.5, f"timed out after {took:.2f}s"
        after = await pool.run(pid, timeout=5)
        assert after != before, "the stalled worker was not replaced"
        assert not _alive(before)
        assert restarts == ["timeout"]
        # and a real document parses fine on the new worker
        outcome = await pool.run(parse_job, _doc(FEED), ParseLimits(), timeout=5)
        assert isinstance(outcome, Parsed) and [item_id for item_id, _ in outcome.items]

    asyncio.run(scenario())


def test_the_event_loop_keeps_ticking_during_a_stall(pool: WorkerPool) -> None:
    async def scenario() -> float:
        stalled = asyncio.create_task(pool.run(spin, timeout=1.0))
        worst = 0.0
        while not stalled.done():
            tick = time.monotonic()
            await asyncio.sleep(0.02)
            worst = max(worst, time.monotonic() - tick - 0.02)
        with pytest.raises(WorkerTimeout):
            await stalled
        return worst

    assert asyncio.run(scenario()) < 0.25


@pytest.mark.parametrize(
    ("crash", "words"), [(exit_hard, "status 3"), (segfault, "SIGSEGV")], ids=["os._exit", "segfault"]
)
def test_a_crashed_worker_is_a_clear_error_and_the_pool_goes_on(
    pool: WorkerPool, restarts: list[str], crash: object, words: str
) -> None:
    async def scenario() -> None:
        with pytest.raises(WorkerCrashed, match=words):
            await pool.run(crash, timeout=5)  # type: ignore[arg-type]
        assert restarts == ["crash"]
        assert await pool.run(pid, timeout=5) > 0

    asyncio.run(scenario())


def test_the_memory_cap_is_a_memory_error_in_the_worker(pool: WorkerPool) -> None:
    async def scenario() -> None:
        with pytest.raises(MemoryError):
            await pool.run(allocate, 1024, timeout=5)
        assert await pool.run(allocate, 16, timeout=5) == 16 * 1024 * 1024

    asyncio.run(scenario())


def test_parse_errors_come_back_as_values(pool: WorkerPool) -> None:
    outcome = pool.run_sync(parse_job, _doc(b"  \n"), ParseLimits(), timeout=5)
    assert outcome == Unparsable("empty", "the document is empty")
    parsed = pool.run_sync(parse_job, _doc(FEED), ParseLimits(), timeout=5)
    assert isinstance(parsed, Parsed) and parsed.shape == "feed" and b"Harbour reopens" in parsed.items[0][1]


def test_run_sync_times_out_too(pool: WorkerPool) -> None:
    with pytest.raises(WorkerTimeout):
        pool.run_sync(catastrophic_regex, timeout=0.3)
    assert pool.run_sync(pid, timeout=5) > 0


def test_closing_with_a_stalled_worker_is_prompt(pool: WorkerPool) -> None:
    async def scenario() -> None:
        worker = await pool.run(pid, timeout=5)
        stalled = asyncio.create_task(pool.run(catastrophic_regex, timeout=60))
        await asyncio.sleep(0.3)  # the worker is in the regex now
        started = time.monotonic()
        await pool.close()
        assert time.monotonic() - started < 2.0
        with pytest.raises(WorkerInterrupted):
            await stalled
        assert not _alive(worker)
        with pytest.raises(WorkerInterrupted):
            await pool.run(pid, timeout=5)

    asyncio.run(scenario())


def test_cancelling_the_caller_kills_the_worker(pool: WorkerPool, restarts: list[str]) -> None:
    async def scenario() -> None:
        worker = await pool.run(pid, timeout=5)
        stalled = asyncio.create_task(pool.run(spin, timeout=60))
        await asyncio.sleep(0.3)
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled
        deadline = time.monotonic() + 2
        while _alive(worker) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(worker)
        assert restarts == ["cancelled"]
        assert await pool.run(pid, timeout=5) != worker

    asyncio.run(scenario())


def live_page(posts: int) -> bytes:
    """A legitimate live page whose parse takes seconds: thousands of timestamped posts."""
    post = "{h}:{m:02d} PM\u00a0\n\nHeadline number {i} about the news.\n\nBody of post {i}, a few words.\n\n"
    head = "date 2024-11-04\nA live page with very many posts on it\n\n"
    return (head + "".join(post.format(h=1 + i % 11, m=i % 60, i=i) for i in range(posts))).encode()


@pytest.mark.subprocess
def test_the_parse_cli_is_bounded_by_its_deadline(tmp_path: Path) -> None:
    """`ingestor parse` gives up on a slow file at --deadline with one clear line, and goes on."""
    slow = tmp_path / "slow.txt"
    slow.write_bytes(live_page(20_000))
    good = tmp_path / "good.xml"
    good.write_bytes(FEED)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ingestor", "parse", str(slow), str(good), "--deadline", "300ms"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert [json.loads(line)["title"] for line in result.stdout.splitlines()] == ["Harbour reopens"]
    assert result.stderr.strip().splitlines() == [
        f"{slow}: parse_timeout: still parsing after 0.3 s; the worker was killed"
    ]


# ---- the stage's handler on the pool ----------------------------------------------------------


def _record(body: bytes, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    headers = [(hdr.URL, b"http://x/feed"), (hdr.FETCHED_AT, b"2024-11-04T10:00:00Z")]
    return ConsumerRecord("news.raw", 0, offset, 0, 0, b"feed-1", body, None, 6, len(body), headers)


def _counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_stage_dead_letters_a_stalled_document_and_goes_on() -> None:
    settings = load_settings(None, overrides={"parse": {"deadline": "300ms", "workers": 1}})
    stage = ParseStage(settings, connection=None)  # type: ignore[arg-type]  # no broker needed

    async def scenario() -> None:
        await stage.pool.start()
        try:
            timeouts = _counter("ingestor_parse_timeouts_total")
            restarts = _counter("ingestor_parse_worker_restarts_total", reason="timeout")
            with pytest.raises(Refused) as refused:
                await stage.handle(_record(live_page(20_000)))
            assert refused.value.error_type == "parse_timeout"
            assert _counter("ingestor_parse_timeouts_total") == timeouts + 1
            assert _counter("ingestor_parse_worker_restarts_total", reason="timeout") == restarts + 1
            (output,) = await stage.handle(_record(FEED, offset=1))  # on the replacement worker
            assert output.value is not None and b"Harbour reopens" in output.value
        finally:
            await stage.stop()

    asyncio.run(scenario())


def test_the_stage_counts_and_logs_dropped_items(monkeypatch: pytest.MonkeyPatch) -> None:
    second = b"<item><guid>a-2</guid><title>Ferry resumes</title><description>Again.</description></item>"
    two = FEED.replace(b"</channel>", second + b"</channel>")
    stage = ParseStage(load_settings(None, overrides={"parse": {"workers": 1}}), connection=None)  # type: ignore[arg-type]
    stage._limits = ParseLimits(max_items=1)

    async def scenario() -> None:
        await stage.pool.start()
        try:
            before = _counter("ingestor_parse_items_dropped_total", reason="over_item_cap")
            with capture_logs() as logs:
                # a logger bound under the capture: the module's own may have been cached by an
                # earlier test in this process under another configuration
                monkeypatch.setattr(service, "log", structlog.get_logger("consumers.parse"))
                outputs = await stage.handle(_record(two))
            assert len(outputs) == 1
            assert _counter("ingestor_parse_items_dropped_total", reason="over_item_cap") == before + 1
            dropped = [e for e in logs if e["event"] == "items_dropped"]
            assert [(e["reason"], e["count"], e["feed"]) for e in dropped] == [("over_item_cap", 1, "feed-1")]
            (parsed,) = [e for e in logs if e["event"] == "raw_parsed"]
            assert parsed["dropped"] == {"over_item_cap": 1} and parsed["status"] == "ok"
        finally:
            await stage.stop()

    asyncio.run(scenario())


def test_parse_settings() -> None:
    parse = load_settings(None).parse
    assert parse.deadline == 10.0 and parse.worker_memory == 1024**3 and parse.worker_count >= 1
    tuned = load_settings(
        None, overrides={"parse": {"deadline": "250ms", "workers": 3, "worker_memory": None}}
    )
    assert (tuned.parse.deadline, tuned.parse.worker_count, tuned.parse.worker_memory) == (0.25, 3, None)
    for bad in ({"deadline": 0}, {"workers": 0}, {"worker_memory": "64MiB"}):
        with pytest.raises(ConfigError):
            load_settings(None, overrides={"parse": bad})
