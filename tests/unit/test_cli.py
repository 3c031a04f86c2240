"""The CLI as a user meets it: clear errors, never a traceback, the seed's two items."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SEED


def ingestor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingestor.cli", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_run_with_a_bad_config_names_the_key_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n  - {id: a, url: 'https://example.org/', interval: soon}\n")
    result = ingestor("run", "--config", str(config))
    assert result.returncode == 2
    assert "feeds.0.interval" in result.stderr and "Traceback" not in result.stderr
    assert "broker_started" not in result.stdout


@pytest.mark.skipif(not SEED.exists(), reason="../shared/examples is not beside the checkout")
def test_parse_prints_the_two_seed_items() -> None:
    result = ingestor(
        "parse", str(SEED), "--timezone", "Europe/Kyiv", "--content-type", "text/plain; charset=utf-8"
    )
    assert result.returncode == 0, result.stderr
    article, update = (json.loads(line) for line in result.stdout.splitlines())
    assert article["kind"] == "article"
    assert (
        article["title"]
        == "First North Korean troops come under fire in Kursk Oblast, Ukrainian official claims"
    )
    assert article["authors"] == ["Martin Fornusek", "The Kyiv Independent news desk"]
    assert article["published_at"] == "2024-11-04T06:36:00Z"
    assert article["body"].startswith("The first North Korean soldiers")
    assert article["body"].endswith("Pyongyang's forces in the war.")
    for noise in ("TOPSHOT", "This audio is created", "Authors:", "Skip to content", "2 min read"):
        assert noise not in article["body"]
    assert update["kind"] == "live_update"
    assert update["title"] == "Russia attacks supermarket in Kharkiv, injures 14."
    assert update["published_at"] == "2024-11-04T23:10:00Z"
    assert update["updated_at"] is None
    assert update["body"].startswith("The attack damaged a supermarket")
    assert update["parent_id"] == article["id"]


def test_parse_goes_on_after_a_bad_file_and_exits_1(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><guid>g1</guid>'
        "<title>Only item</title><description>text</description></item></channel></rss>"
    )
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"")
    result = ingestor("parse", str(bad), str(tmp_path / "missing.xml"), str(good))
    assert result.returncode == 1
    assert [json.loads(line)["title"] for line in result.stdout.splitlines()] == ["Only item"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"{bad}: empty") and "missing.xml" in errors[1]
    assert "Traceback" not in result.stderr


def test_tail_without_a_running_daemon_says_so(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"kafka:\n  bootstrap_servers: embedded\n  embedded:\n    state_dir: {tmp_path}\n")
    result = ingestor("tail", "news.published", "--config", str(config))
    assert result.returncode == 2 and "no running" in result.stderr


def test_schema_prints_json_schema() -> None:
    result = ingestor("schema")
    schema = json.loads(result.stdout)
    assert {"event", "version", "id", "published_at"} <= set(schema["properties"])
