"""No daemon outlives its test, whatever the test's outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.daemon_process import Daemon


@pytest.fixture(autouse=True)
def _kill_leftover_daemons() -> Iterator[None]:
    yield
    while Daemon.started:
        Daemon.started.pop().kill()
