"""fetch.processes and fetch.event_loop: the count, the children's settings, the summed health."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingestor.config import ConfigError, load_settings
from ingestor.fetch.status import FetchHealth
from ingestor.tools.fetchers import child_listen, child_settings, combine

REPO = Path(__file__).resolve().parents[2]


def health(**values: object) -> FetchHealth:
    base: dict[str, object] = {
        "running": True, "ready": True, "feeds": 10, "in_flight": 1, "waiting_for_host": 0,
        "overdue_seconds": 0.5, "fetches": 100, "produced": 3, "outcomes": {"ok": 3, "not_modified": 97},
        "lateness_p99_seconds": 0.2, "last_produce_error": None, "instance": "h:1", "partitions": (0, 2),
    }  # fmt: skip
    return FetchHealth(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_pinned_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGESTOR_FETCH__PROCESSES", raising=False)  # tests/conftest.py pins it to 1


def test_the_default_is_one_process_per_usable_core_and_one_without_a_group() -> None:
    assert load_settings(None, overrides={"fetch": {"processes": None}}).fetch.process_count >= 1
    assert load_settings(None, overrides={"fetch": {"processes": 3}}).fetch.process_count == 3
    assert (
        load_settings(None, overrides={"fetch": {"processes": None, "sharding": False}}).fetch.process_count
        == 1
    )


def test_several_processes_without_a_group_or_with_websub_are_refused() -> None:
    with pytest.raises(ConfigError, match="processes > 1"):
        load_settings(None, overrides={"fetch": {"processes": 2, "sharding": False}})
    with pytest.raises(ConfigError, match="processes > 1"):
        load_settings(
            None, overrides={"fetch": {"processes": 2, "websub": {"callback_url": "https://x.example/cb"}}}
        )


def test_each_child_has_its_own_ops_port_after_the_parents() -> None:
    assert child_listen("127.0.0.1:9108", 0) == "127.0.0.1:9109"
    assert child_listen("[::1]:9108", 1) == "[::1]:9110"
    assert child_listen("127.0.0.1:0", 1) == "127.0.0.1:0"
    assert child_listen(None, 0) is None


def test_a_child_runs_one_fetcher_on_the_resolved_broker() -> None:
    settings = load_settings(None, overrides={"fetch": {"processes": 2}, "ops": {"listen": "127.0.0.1:9108"}})
    child = child_settings(settings, "127.0.0.1:4242", 1)
    assert child.kafka.bootstrap_servers == "127.0.0.1:4242" and not child.kafka.is_embedded
    assert child.fetch.process_count == 1
    assert child.ops.listen == "127.0.0.1:9110"
    assert settings.kafka.is_embedded  # the parent's settings are not changed


def test_the_parent_sums_its_children_and_is_ready_only_when_all_are() -> None:
    both = combine([health(), health(feeds=5, overdue_seconds=2.0, partitions=(1,), instance="h:2")], 2)
    assert both.ready and both.feeds == 15 and both.fetches == 200 and both.overdue_seconds == 2.0
    assert both.outcomes == {"ok": 6, "not_modified": 194}
    assert both.partitions == (0, 1, 2)
    assert not combine([health(), None], 2).ready  # one child has not reported yet
    assert not combine([health(), health(ready=False)], 2).ready
    assert not combine([health()], 2).ready  # one child dead
    assert not combine([], 2).running


BLOCKED = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "uvloop" or name.startswith("uvloop."):
            raise ImportError("blocked for the test: uvloop")
        return None
sys.meta_path.insert(0, Blocker())
import asyncio
from ingestor.tools.fetchers import run_loop
async def main():
    print("ran on", type(asyncio.get_running_loop()).__module__)
run_loop(main(), "asyncio")
run_loop(main(), "uvloop")
"""


@pytest.mark.subprocess
def test_uvloop_missing_is_an_error_not_a_quiet_fallback_to_asyncio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.count("ran on") == 1  # asyncio ran; uvloop did not fall back to it
    assert result.returncode != 0 and "ImportError" in result.stderr


def test_uvloop_runs_the_coroutine() -> None:
    import asyncio

    from ingestor.tools.fetchers import run_loop

    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run_loop(main(), "uvloop")
    assert seen and seen[0].startswith("uvloop")


class Limits:
    """A stand-in for ``resource``'s open-files limit: (soft, hard), and whether raising is refused."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def getrlimit(self, _: int) -> tuple[int, int]:
        return self.soft, self.hard

    def setrlimit(self, _: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.soft, self.hard = limits


@pytest.mark.parametrize(
    ("soft", "hard", "refuse", "soft_after", "warned"),
    [
        (1024, 65536, False, 100 + 8192 + 256, False),  # raised to what the settings use
        (100_000, 200_000, False, 100_000, False),  # already enough: left alone
        (1024, 2048, False, 2048, True),  # the hard limit is too low: raised to it, and said
        (1024, 65536, True, 1024, True),  # raising refused: said
        (1024, -1, False, 100 + 8192 + 256, False),  # no hard limit
    ],
)
def test_the_descriptor_limit_is_raised_to_what_fetching_can_use(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, refuse: bool, soft_after: int, warned: bool
) -> None:
    from structlog.testing import capture_logs

    from ingestor.tools import fetchers

    limits = Limits(soft, hard, refuse)
    monkeypatch.setattr(fetchers, "resource", limits)
    with capture_logs() as logs:
        fetchers.raise_descriptor_limit(load_settings(None).fetch)
    assert limits.soft == soft_after
    assert [e["event"] for e in logs] == (["descriptor_limit_low"] if warned else [])


@pytest.mark.parametrize(
    ("soft", "allowed"), [(100_000, 8192), (4096, 4096 - 100 - 256), (300, 0), (-1, 8192)]
)
def test_the_fetcher_keeps_fewer_idle_connections_than_the_open_files_limit_allows(
    monkeypatch: pytest.MonkeyPatch, soft: int, allowed: int
) -> None:
    from ingestor.fetch import http

    monkeypatch.setattr(http, "resource", Limits(soft, -1))
    assert http.idle_connections_allowed(load_settings(None).fetch) == allowed
