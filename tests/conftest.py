"""Shared fixtures (one real embedded broker per test session, unique topics per test) and
the test tiers.

Every test gets its tier from where it lives, so no file can forget a marker:

* ``integration``: tests/integration (the embedded broker, loopback HTTP, daemons);
* ``chaos``: tests/chaos (SIGKILLs and broker outages, minutes; one xdist group, so the
  suite's other tests run beside it instead of after it);
* ``lint``: tests/test_static.py (ruff, mypy --strict);
* ``subprocess``: tests that start the ``ingestor`` command or another interpreter;
* ``fast``: everything else: pure logic, the parser on real documents, fakes.  This is the
  fast tier, ``python -m pytest -m fast`` (under 2 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestor.config import EmbeddedBrokerConfig, Settings, load_settings
from ingestor.kafka.embedded import EmbeddedBroker

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED = SHARED / "examples" / "kyivindependent-2024-11-04.txt"


_SLOW_TIERS = ("integration", "chaos", "lint", "subprocess")

# Full text (fetching each teaser entry's linked page) is on by default for users; in tests it is
# off unless a test asks for it per feed (``full_text: auto``), since the links in most test feeds
# point at hosts a test must never dial.  Set here, so daemons started as subprocesses inherit it.
os.environ.setdefault("INGESTOR_FULL_TEXT__MODE", "never")
# One fetch process per daemon (the default is one per core): a daemon a test starts fetches in
# its own process, as the tests expect; tests/integration/test_fetch_processes.py asks for two.
os.environ.setdefault("INGESTOR_FETCH__PROCESSES", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        if path.startswith("tests/integration/"):
            item.add_marker(pytest.mark.integration)
        elif path.startswith("tests/chaos/"):
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.xdist_group("chaos"))
        elif path == "tests/test_static.py":
            item.add_marker(pytest.mark.lint)
        if not any(item.get_closest_marker(tier) for tier in _SLOW_TIERS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def broker_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real embedded broker on loopback for the whole session (memory storage)."""
    state_dir = tmp_path_factory.mktemp("broker-state")
    broker = EmbeddedBroker(EmbeddedBrokerConfig(state_dir=state_dir), log_path=state_dir / "broker.log")
    address = asyncio.run(broker.start())
    yield address
    asyncio.run(broker.stop())


def make_settings(
    broker_address: str, *, feeds: list[dict[str, object]] | None = None, **sections: dict[str, object]
) -> Settings:
    """Settings on the session broker with topics and groups no other test uses."""
    tag = uuid.uuid4().hex[:8]
    overrides: dict[str, object] = {
        "kafka": {"bootstrap_servers": broker_address},
        "topics": {
            "raw": f"t{tag}.raw",
            "items": f"t{tag}.items",
            "published": f"t{tag}.published",
            "dlq": f"t{tag}.dlq",
            "feeds": f"t{tag}.feeds",
            "article_requests": f"t{tag}.article-requests",
            "partitions": 3,
        },
        "full_text": {"state_topic": f"t{tag}.article-state", "group_id": f"g{tag}-articles"},
        "parse": {"group_id": f"g{tag}-parse"},
        "dedup": {"group_id": f"g{tag}-dedup"},
        "fetch": {"allow_private_networks": True, "state_topic": f"t{tag}.fetch-state"},
        "feeds": feeds or [],
    }
    for name, values in sections.items():
        base = overrides.get(name)
        overrides[name] = {**base, **values} if isinstance(base, dict) else values
    return load_settings(None, overrides=overrides)
