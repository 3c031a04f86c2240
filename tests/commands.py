"""The ``ingestor`` command as a user runs it, for tests: a fresh interpreter, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_ingestor(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m ingestor ARGS``; ``env`` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "ingestor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        check=False,
    )
