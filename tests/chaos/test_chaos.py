"""Nothing lost, nothing twice, while things break for real.

One run, one broker (the embedded broker on S3 storage served by moto, so its data outlives a restart), one
set of topics, three acts:

A. the all-in-one daemon (`ingestor run`) is SIGKILLed at random moments and restarted;
B. fetch, parse and dedup run as separate processes, two of each, and random ones are
   SIGKILLed and restarted while the others take over;
C. the broker is stopped for 30 s and started again while those six processes run on.

Meanwhile a loopback newsroom keeps an RSS feed and a live page changing (see newsroom.py).
Afterwards every expected (id, version, content) is on news.published exactly once, with
versions in order per id.  Set CHAOS_SEED to replay a run's random choices.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.newsroom import FeedScript, Newsroom, expected_versions
from tests.chaos.procs import Broker, Fleet, Moto
from tests.integration.daemon_process import write_config
from tests.integration.kafka_helpers import read_topic

# Runs once, no automatic re-run: a failure is a failure. The duplicates found by this suite were
# traced to their mechanisms and fixed (a zombie member after a rebalance or a broker restart; a
# restore that trusted the broker's reported end; a batch delivered after an outage). One more
# mechanism, seen once and not reproduced, is unexplained: publications of a SIGKILLed process
# that became visible only after the broker restart (docs/architecture.md, "Delivery
# guarantees"). If it recurs the test fails, and the process logs it keeps tell which mechanism.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

MIN_ITEMS = 2000
MIN_EDITS = 300
SIGKILLS_ALL_IN_ONE = 5
SIGKILLS_SPLIT = 5
OUTAGE_S = 30.0
RUN_BUDGET_S = 480.0  # from the first daemon to the frozen newsroom; the suite stays under 10 min
DRAIN_S = 120.0


def _config(tmp_path: Path, bootstrap: str, base_url: str) -> Path:
    tag = uuid.uuid4().hex[:6]
    return write_config(
        tmp_path / "chaos.yaml",
        {
            "kafka": {"bootstrap_servers": bootstrap, "request_timeout": 10},
            "topics": {
                "raw": f"chaos{tag}.raw",
                "items": f"chaos{tag}.items",
                "published": f"chaos{tag}.published",
                "dlq": f"chaos{tag}.dlq",
                "feeds": f"chaos{tag}.feeds",
                "partitions": 3,
            },
            "parse": {"group_id": f"chaos{tag}-parse"},
            "dedup": {"group_id": f"chaos{tag}-dedup"},
            "fetch": {
                "allow_private_networks": True,
                "state_topic": f"chaos{tag}.fetch-state",
                "min_interval": 0.2,
                "max_interval": 2,
                "max_backoff": 2,
                "startup_spread": 0.2,
                "retry_backoff": 0.2,
                "retry_backoff_max": 1,
                "shutdown_grace": 1,
                "connect_timeout": 2,
                "read_timeout": 5,
                "total_timeout": 8,
            },
            "feeds": [
                {"id": "chaos-rss", "url": f"{base_url}/feed.xml", "interval": 0.3, "format": "feed"},
                {"id": "chaos-live", "url": f"{base_url}/live.txt", "interval": 0.3, "format": "text"},
            ],
        },
    )


def _scripts() -> list[FeedScript]:
    return [
        FeedScript("chaos-rss", "/feed.xml", "application/rss+xml", "feed", 15, 60, 100_000, edits_per_gen=2),
        FeedScript("chaos-live", "/live.txt", "text/plain; charset=utf-8", "text", 3, 30, 1440),
    ]


def _volume(newsroom: Newsroom) -> tuple[int, int]:
    items = edits = 0
    for script in newsroom.scripts.values():
        items += script.next_number + (1 if script.fmt == "text" else 0)  # + the page's article
        edits += script.edits
    return items, edits


def tally(published: list[Any], expected: dict[str, list[str]]) -> dict[str, int]:
    """lost: expected (id, version, hash) missing; duplicated: any published message beyond the
    first copy of an expected one; out_of_order: ids whose versions do not rise in log order."""
    wanted = {(i, n + 1, h) for i, hashes in expected.items() for n, h in enumerate(hashes)}
    copies: Counter[tuple[str, int, str]] = Counter()
    by_id: dict[str, list[int]] = defaultdict(list)
    for record in sorted(published, key=lambda r: (r.partition, r.offset)):
        headers = {k: v.decode() for k, v in record.headers}
        key = (record.key.decode(), int(headers["item-version"]), headers["content-hash"])
        copies[key] += 1
        by_id[key[0]].append(key[1])
    return {
        "lost": len(wanted - set(copies)),
        "duplicated": sum(n - 1 for n in copies.values())
        + sum(n for k, n in copies.items() if k not in wanted),
        "out_of_order": sum(1 for versions in by_id.values() if versions != sorted(set(versions))),
        "total_items": len(expected),
        "expected_versions": len(wanted),
        "edits": len(wanted) - len(expected),
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Moto, Broker, Newsroom, Fleet]]:
    moto = Moto(tmp_path, "chaos")
    broker: Broker | None = None
    newsroom: Newsroom | None = None
    fleet: Fleet | None = None
    try:
        bootstrap_config = write_config(
            tmp_path / "broker.yaml", {"kafka": {"bootstrap_servers": "embedded"}}
        )
        broker = Broker(tmp_path, bootstrap_config, moto)
        broker.start()
        newsroom = Newsroom(broker.address, "", _scripts(), min_period=0.6)
        newsroom.start()
        config = _config(tmp_path, broker.address, newsroom.base_url)
        import yaml

        newsroom.raw_topic = yaml.safe_load(config.read_text())["topics"]["raw"]
        fleet = Fleet(config)
        yield moto, broker, newsroom, fleet
    finally:
        if fleet is not None:
            fleet.kill_all()
        if newsroom is not None:
            newsroom.stop()
        if broker is not None:
            broker.kill()
        moto.kill()


def _sleep_while_growing(seconds: float, deadline: float) -> None:
    time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


def test_nothing_lost_nothing_twice(world: tuple[Moto, Broker, Newsroom, Fleet], tmp_path: Path) -> None:
    log: list[str] = []
    keep = os.environ.get("CHAOS_LOG_DIR")  # kept for passing runs too, one folder per run
    run_dir = f"run-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}"
    try:
        _run(world, log)
    except BaseException:
        logs = Path(keep) / run_dir if keep else tmp_path / "process-logs"
        world[3].dump_logs(logs)
        log.append(f"process logs: {logs}")
        print("\n".join(log))  # the seed and the timeline, to replay a failure
        raise
    if keep:
        world[3].dump_logs(Path(keep) / run_dir)


def _run(world: tuple[Moto, Broker, Newsroom, Fleet], log: list[str]) -> None:
    _moto, broker, newsroom, fleet = world
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + RUN_BUDGET_S
    acts = os.environ.get("CHAOS_ACTS", "ABC")  # a subset, only to debug one act quickly
    log.append(f"seed={seed} acts={acts}")

    # A. The all-in-one daemon, SIGKILLed at random moments.
    fleet.start("all")
    fleet.running["all"].wait_for("daemon_started", timeout=60)
    for n in range(SIGKILLS_ALL_IN_ONE if "A" in acts else 0):
        _sleep_while_growing(rng.uniform(2.0, 5.0), deadline)
        fleet.sigkill("all")
        log.append(f"A: SIGKILL all-in-one #{n + 1} at {time.monotonic() - started:.1f}s {_volume(newsroom)}")
        fleet.start("all")
    _sleep_while_growing(5.0, deadline)
    code = fleet.terminate("all")
    log.append(f"A: SIGTERM all-in-one -> exit {code}")
    assert code == 0

    # B. Each stage in two processes; random ones SIGKILLed, restarted a moment later.
    names = [f"{stage}-{i}" for stage in ("dedup", "parse", "fetch") for i in (1, 2)]
    for name in names:
        fleet.start(name, name.split("-")[0])
    for name in names:
        fleet.running[name].wait_for("daemon_started", timeout=60)
    for n in range(SIGKILLS_SPLIT if "B" in acts else 0):
        _sleep_while_growing(rng.uniform(2.5, 5.0), deadline)
        victim = rng.choice(names)
        fleet.sigkill(victim)
        log.append(f"B: SIGKILL {victim} #{n + 1} at {time.monotonic() - started:.1f}s {_volume(newsroom)}")
        _sleep_while_growing(rng.uniform(0.5, 1.5), deadline)
        fleet.start(victim, victim.split("-")[0])
    _sleep_while_growing(5.0, deadline)

    # C. The broker goes away for 30 s; its data is on S3 and comes back with it.
    broker.stop()
    log.append(f"C: broker stopped at {time.monotonic() - started:.1f}s {_volume(newsroom)}")
    time.sleep(OUTAGE_S if "C" in acts else 1.0)
    dead = {name: d for name, d in fleet.running.items() if d.process.poll() is not None}
    assert not dead, "died in the outage: " + "\n".join(
        f"{name} exit {d.process.returncode}:\n" + "\n".join(d.lines[-25:]) for name, d in dead.items()
    )
    broker.start()
    log.append(f"C: broker restarted at {time.monotonic() - started:.1f}s {_volume(newsroom)}")

    # Run on until the volume is there, then freeze the newsroom and let the pipeline drain.
    while not (_volume(newsroom)[0] >= MIN_ITEMS and _volume(newsroom)[1] >= MIN_EDITS):
        assert time.monotonic() < deadline, f"volume {_volume(newsroom)} not reached in time\n" + "\n".join(
            log
        )
        time.sleep(0.5)
    newsroom.frozen = True
    log.append(f"frozen at {time.monotonic() - started:.1f}s {_volume(newsroom)}")
    expected: dict[str, list[str]] = {}
    for script in newsroom.scripts.values():
        url = f"{newsroom.base_url}{script.path}"
        expected.update(expected_versions(script, url))
    topics = _topics(fleet)
    counts: dict[str, int] = {}
    drain_until = time.monotonic() + DRAIN_S
    while time.monotonic() < drain_until:
        published = asyncio.run(read_topic(broker.address, topics["published"], settle=1.0, limit_s=60))
        counts = tally(published, expected)
        if counts["lost"] == 0:
            break
        time.sleep(2.0)
    time.sleep(3.0)  # anything late would be a duplicate: give it the chance to show
    published = asyncio.run(read_topic(broker.address, topics["published"], settle=1.0, limit_s=60))
    counts = tally(published, expected)
    dlq = asyncio.run(read_topic(broker.address, topics["dlq"], settle=0.5, limit_s=30))
    daemons = dict(fleet.running)
    exits = {name: fleet.terminate(name) for name in list(fleet.running)}
    for name, code in exits.items():
        if code != 0:
            log.append(f"{name} exit {code}, last lines:\n" + "\n".join(daemons[name].lines[-30:]))
    counts |= {"dlq": len(dlq), "sigkills": fleet.kills, "run_seconds": round(time.monotonic() - started)}
    report = "\n".join([*log, f"exits={exits}", f"chaos counts: {counts}"])
    print(report)
    lines = fleet.all_lines()
    restarts = sum('"stage_restarting"' in line for line in lines)
    withheld = sum('"batch_withheld"' in line for line in lines)
    print(f"stage restarts logged: {restarts}; dedup batches withheld (membership not confirmed): {withheld}")
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["out_of_order"] == 0, report
    assert counts["total_items"] >= MIN_ITEMS and counts["edits"] >= MIN_EDITS, report
    assert counts["dlq"] == 0, report
    assert fleet.kills >= SIGKILLS_ALL_IN_ONE + SIGKILLS_SPLIT or acts != "ABC"
    assert all(code == 0 for code in exits.values()), report


def _topics(fleet: Fleet) -> dict[str, str]:
    import yaml

    topics: dict[str, str] = yaml.safe_load(fleet.config.read_text())["topics"]
    return topics
