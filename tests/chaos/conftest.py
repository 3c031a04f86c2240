"""The chaos suite: selected with `-m chaos`, left out with `-m "not chaos"`, run by default."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: kills processes and the broker for real (minutes)")
