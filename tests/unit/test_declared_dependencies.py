"""A declared dependency that cannot be imported is a start-up error, never a quieter parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BLOCK = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == {name!r} or name.startswith({name!r} + "."):
            raise ImportError("blocked for the test: " + name)
        return None
sys.meta_path.insert(0, Blocker())
import consumers.parse.service

pytestmark = pytest.mark.subprocess
"""


@pytest.mark.parametrize("module", ["trafilatura", "lxml_html_clean", "selectolax", "feedparser", "pebble"])
def test_the_parse_stage_does_not_even_import_without_a_declared_dependency(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK.format(name=module)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr or "ModuleNotFoundError" in result.stderr
