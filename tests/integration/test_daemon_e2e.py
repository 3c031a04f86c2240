"""`ingestor run` end to end: a live page on loopback, edited while the daemon runs, reaches
news.published as exactly the right events, across polls and across a daemon restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema

from ingestor.kafka.embedded import free_port, read_records
from tests.conftest import make_settings
from tests.integration.daemon_process import Daemon, write_config
from tests.integration.kafka_helpers import read_topic, values
from tests.integration.live_server import LiveServer
from tests.unit.test_schema import SCHEMA_FILE

ARTICLE = """date 2024-11-04 Skip to content
Dam repairs finish ahead of the flood season, engineers say

by Olena Test and The Example Desk November 4, 2024 9:15 AM 3 min read
Workers stand on the crest of the dam at dawn on Nov. 3, 2024. (Jane Roe/Example Agency)
This audio is created with AI assistance

Repairs to the river dam finished two weeks ahead of schedule, the regional authority said on Nov. 4.

Engineers expect the structure to hold through the spring flood season.

Authors: Olena Test, The Example Desk
"""


def fragment(clock: str, title: str, body: str, updated: str = "") -> str:
    return f"{clock}\u00a0 (Updated:\u00a0{updated})\n\n{title}\n\n{body}\n"


def page(fragments: list[str]) -> str:
    return ARTICLE + "".join(fragments)


F_NOON = fragment(
    "12:05 PM", "Power restored in three districts.", "Crews restored power after the overnight attack."
)
F_TEN = fragment("10:40 AM", "Bridge reopens to traffic.", "The bridge reopened after inspections.")
F_TEN_EDITED = fragment(
    "10:40 AM",
    "Bridge reopens to traffic.",
    "The bridge reopened after inspections, officials confirmed.",
    updated="11:02 AM",
)
F_TOP = fragment("1:30 PM", "New school opens in the suburbs.", "The school will take 600 pupils.")


def summary(published: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [(p["kind"], p["title"], p["event"], p["version"]) for p in published]


def test_live_page_edits_and_restart_publish_exactly_right(tmp_path: Path, broker_address: str) -> None:
    settings = make_settings(broker_address)
    topics = settings.topics.model_dump()

    async def scenario() -> None:
        server = LiveServer()
        base = await server.start()
        server.set("/live.txt", page([F_NOON, F_TEN]))
        config = write_config(
            tmp_path / "config.yaml",
            {
                "kafka": {"bootstrap_servers": broker_address},
                "topics": topics,
                "parse": {"group_id": settings.parse.group_id},
                "dedup": {"group_id": settings.dedup.group_id},
                "fetch": {"allow_private_networks": True},
                "feeds": [
                    {"id": "live", "url": f"{base}/live.txt", "timezone": "Europe/Kyiv", "interval": 0.5}
                ],
            },
        )
        try:
            daemon = await asyncio.to_thread(Daemon, config)
            await asyncio.to_thread(daemon.wait_for, "item_published", 3)
            first = values(await read_topic(broker_address, settings.topics.published, expect=3))
            assert sorted(summary(first)) == [
                ("article", "Dam repairs finish ahead of the flood season, engineers say", "created", 1),
                ("live_update", "Bridge reopens to traffic.", "created", 1),
                ("live_update", "Power restored in three districts.", "created", 1),
            ]
            # A new item on top and an edit further down.
            server.set("/live.txt", page([F_TOP, F_NOON, F_TEN_EDITED]))
            await asyncio.to_thread(daemon.wait_for, "item_published", 5)
            hits = server.pages["/live.txt"].hits
            while server.pages["/live.txt"].hits < hits + 5:  # five more polls of the same page
                await asyncio.sleep(0.2)
            code, took = await asyncio.to_thread(daemon.terminate)
            assert code == 0 and took < 10, f"exit {code} after {took:.1f}s"
            assert all(_is_json(line) for line in daemon.lines), "a non-JSON line on stdout"
            assert daemon.events("feed_fetched"), "no canonical fetch line"
            assert daemon.events("raw_parsed"), "no canonical parse line"

            # Restart: the same page is fetched again and nothing is published twice.
            again = await asyncio.to_thread(Daemon, config)
            hits = server.pages["/live.txt"].hits
            deadline = time.monotonic() + 40
            while server.pages["/live.txt"].hits < hits + 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.to_thread(again.wait_for, "dedup_state_restored", 1)
            await asyncio.sleep(2)
            code, took = await asyncio.to_thread(again.terminate)
            assert code == 0 and took < 10
        finally:
            await server.stop()
        published = values(await read_topic(broker_address, settings.topics.published, settle=1.5))
        assert sorted(summary(published)) == sorted(
            [
                ("article", "Dam repairs finish ahead of the flood season, engineers say", "created", 1),
                ("live_update", "Bridge reopens to traffic.", "created", 1),
                ("live_update", "Power restored in three districts.", "created", 1),
                ("live_update", "New school opens in the suburbs.", "created", 1),
                ("live_update", "Bridge reopens to traffic.", "updated", 2),
            ]
        )
        assert max(Counter((p["id"], p["version"]) for p in published).values()) == 1
        schema = json.loads(SCHEMA_FILE.read_text())
        for message in published:  # the subscriber contract: every published item validates
            jsonschema.validate(message, schema)
        edited = next(p for p in published if p["event"] == "updated")
        assert edited["updated_at"] == "2024-11-04T09:02:00Z"
        assert edited["published_at"] == "2024-11-04T08:40:00Z"

    asyncio.run(scenario())


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Loopback desk</title><link>http://127.0.0.1/</link><description>d</description>
<item><guid>loop-1</guid><title>Harbour reopens after repairs</title><link>http://127.0.0.1/a/1</link>
<description>The harbour reopened on Monday.</description>
<pubDate>Mon, 04 Nov 2024 08:36:00 +0200</pubDate></item>
</channel></rss>
"""


def test_embedded_default_tail_and_no_broker_left_behind(tmp_path: Path) -> None:
    """The embedded broker: `ingestor tail` finds it; SIGTERM and SIGKILL both take it down."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "feed.xml").write_text(FEED)
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "config.yaml",
        {
            "kafka": {"bootstrap_servers": "embedded", "embedded": {"state_dir": str(state)}},
            "fetch": {"allow_private_networks": True},
            "feeds": [
                {"id": "nowhere", "url": "http://127.0.0.1:9/feed.xml", "interval": 1},
                {"id": "loop", "url": f"http://127.0.0.1:{port}/feed.xml", "interval": 1},
            ],
        },
    )
    try:
        daemon = Daemon(config)
        daemon.wait_for("daemon_started", timeout=60)
        daemon.wait_for("item_published", timeout=60)
        # the unreachable feed is logged (after its retries); the daemon stays up
        deadline = time.monotonic() + 20
        while not any(
            e.get("feed") == "nowhere" and e.get("outcome") == "connect"
            for e in daemon.events("feed_fetched")
        ):
            assert time.monotonic() < deadline, "the unreachable feed was never logged"
            time.sleep(0.1)
        tail = subprocess.run(
            [sys.executable, "-m", "ingestor", "tail", "news.published", "--from-beginning",
             "--max", "1", "--timeout", "20", "--config", str(config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert tail.returncode == 0, tail.stderr
        (line,) = [json.loads(text) for text in tail.stdout.splitlines()]
        assert line["value"]["title"] == "Harbour reopens after repairs"
        assert line["value"]["event"] == "created" and line["headers"]["ce_type"] == "news.item.created"
        records = read_records(state)
        assert len(records) == 1
        broker_pid = records[0].broker_pid
        code, took = daemon.terminate()
        assert code == 0 and took < 10
        assert not _alive(broker_pid), "the embedded broker outlived the daemon"
        assert not read_records(state)

        killed = Daemon(config)
        killed.wait_for("daemon_started", timeout=60)
        broker_pid = read_records(state)[0].broker_pid
        killed.kill()  # SIGKILL: no chance to clean up; the kernel's parent-death signal does it
        deadline = time.monotonic() + 5
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(broker_pid), "the embedded broker outlived a SIGKILLed daemon"
    finally:
        server.kill()
        server.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of nobody we know still answers kill(0); check its state
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def test_sigterm_while_the_group_still_waits_for_a_killed_member_exits_within_10s(
    tmp_path: Path, broker_address: str
) -> None:
    """After a SIGKILL the coordinator holds the next join until the dead member's session ends
    (10 s); a SIGTERM in that wait must not wait for it."""
    settings = make_settings(broker_address)
    config = write_config(
        tmp_path / "config.yaml",
        {
            "kafka": {"bootstrap_servers": broker_address},
            "topics": settings.topics.model_dump(),
            "parse": {"group_id": settings.parse.group_id},
            "dedup": {"group_id": settings.dedup.group_id},
            "feeds": [],
        },
    )
    first = Daemon(config)
    first.wait_for("partitions_assigned", 2, timeout=60)  # parse and dedup are members
    first.kill()
    second = Daemon(config)
    second.wait_for("partitions_revoked", 2, timeout=60)  # joining, held up by the dead member
    time.sleep(1.0)
    code, took = second.terminate(timeout=20)
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s"
    assert not second.events("partitions_assigned"), "the join was not held up: the test proves nothing"
