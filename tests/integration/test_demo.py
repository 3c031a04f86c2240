"""`ingestor demo` as a newcomer runs it: events appear, edits show as updates, teasers arrive with
their page's full text, nothing is left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ingestor.kafka.embedded import read_records

EVENT_LINE = re.compile(
    r"^\d\d:\d\d:\d\d  (created|updated) v(\d+)\s+(article|live_update)\s+(\S+)\s+"
    r"(\[full text, \d+ words\] )?\S.*$"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def test_demo_prints_created_and_updated_events_and_leaves_no_broker(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "ingestor", "demo", "--duration", "25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # no config.yaml here: the demo needs none
        env={**os.environ, "INGESTOR_KAFKA__EMBEDDED__STATE_DIR": str(state)},
    )
    broker_pids: set[int] = set()
    deadline = time.monotonic() + 20
    while not broker_pids and time.monotonic() < deadline and process.poll() is None:
        broker_pids = {record.broker_pid for record in read_records(state)}
        time.sleep(0.2)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0, err[-3000:]
    assert broker_pids, "the demo did not start an embedded broker:\n" + err[-3000:]
    lines = out.splitlines()
    assert lines and all(EVENT_LINE.match(line) for line in lines), "stdout is not only event lines:\n" + out
    events = [EVENT_LINE.match(line).groups() for line in lines]  # type: ignore[union-attr]
    assert any(event == "created" and version == "1" for event, version, _, _, _ in events)
    assert any(event == "updated" and int(version) >= 2 for event, version, _, _, _ in events), out
    sources = {source for _, _, _, source, _ in events}
    assert {
        "demo-city-live",
        "demo-harbour-live",
        "demo-city-rss",
        "demo-science-atom",
        "demo-city-stories",
    } <= sources, out
    # The teaser feed's entries come once each, with their page's text; no other feed's do.
    stories = [
        (event, version, note) for event, version, _, source, note in events if source == "demo-city-stories"
    ]
    assert stories and all(
        event == "created" and version == "1" and note for event, version, note in stories
    ), out
    assert not any(note for _, _, _, source, note in events if source != "demo-city-stories"), out
    assert "demo stopped:" in err and f"{len(stories)} with the full text of their page" in err
    assert "the pipeline fetched the story page /stories/" in err and " times)" not in err, err  # once each
    assert not any(_alive(pid) for pid in broker_pids), "the embedded broker outlived the demo"
    assert read_records(state) == []
