"""The CLI as a user meets it: clear errors, never a traceback, the seed's two items."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.commands import run_ingestor as ingestor
from tests.conftest import SEED

pytestmark = pytest.mark.subprocess


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


# ---- issue 13: config mistakes exit 2 and unreachable brokers exit 1, one line, no traceback ----


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("command", "config", "env", "expected"),
    [
        (
            ["tail", "news.published"],
            "fetch: {connect_timeout: .nan}\n",
            {},
            "ingestor: config: fetch.connect_timeout: must be a finite number of seconds > 0 (got nan)",
        ),
        (["run"], b"feeds:\n  - id: caf\xe9\n", {}, "config.yaml: not UTF-8 text (byte 0xe9 at offset 18)"),
        (
            ["run"],
            "kafka: {ssl_cafile: /nonexistent/ca.pem}\n",
            {},
            "kafka.ssl_cafile: '/nonexistent/ca.pem': no such",
        ),
        (["dlq", "list"], "fetch: {timeout: 5}\n", {}, "ingestor: config: fetch.timeout: unknown key"),
        (["replay", "--from", "2024-11-04T00:00:00Z"], "kafka: [unclosed\n", {}, "not valid YAML at line 2"),
        (["feeds", "list"], "fetch: {allowed_networks: [10.0.0.0/33]}\n", {}, "'10.0.0.0/33' is not a CIDR"),
        (
            ["status"],
            "kafka: {bootstrap_servers: '127.0.0.1:9'}\n",
            {"INGESTOR_KAFKA__REQUEST_TIMEOUT": "nan"},
            "kafka.request_timeout: 'nan' is not a duration; use seconds (30) or '30s', '5m', '2h' "
            "(from INGESTOR_KAFKA__REQUEST_TIMEOUT)",
        ),
    ],
)
def test_config_mistakes_exit_2_with_one_line(
    tmp_path: Path, command: list[str], config: str | bytes, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(config)
    result = ingestor(*command, "--config", str(path), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith("ingestor: config: ") and expected in line


@pytest.mark.parametrize("target", ["missing", "directory"])
def test_a_config_path_that_is_not_a_file_exits_2(tmp_path: Path, target: str) -> None:
    path = tmp_path / "absent.yaml" if target == "missing" else tmp_path
    result = ingestor("status", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    expected = "no such file" if target == "missing" else "is a directory, not a config file"
    assert _one_line(result.stderr) == f"ingestor: config: {path}: {expected}"


_OPML = (
    '<?xml version="1.0"?><opml version="2.0"><body>'
    '<outline type="rss" text="x" xmlUrl="https://example.org/feed.xml"/></body></opml>'
)


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "news.published"],
        ["feeds", "list"],
        ["feeds", "add", "x", "https://example.org/feed.xml"],
        ["feeds", "remove", "x"],
        ["feeds", "status", "x"],
        ["feeds", "import", "feeds.opml"],
        ["dlq", "list"],
        ["dlq", "replay"],
        ["replay", "--from", "2024-11-04T00:00:00Z"],
        ["status"],
    ],
    ids=lambda command: "-".join(part for part in command if part.isalpha()),
)
def test_tools_say_once_that_the_broker_is_unreachable(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "feeds.opml").write_text(_OPML)
    port = _closed_port()
    result = ingestor(
        *command, "--bootstrap-servers", f"127.0.0.1:{port}", "--connect-timeout", "2", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    name = " ".join(command[:2]) if command[0] in ("feeds", "dlq") else command[0]
    assert (
        _one_line(result.stderr) == f"ingestor {name}: cannot reach the broker at 127.0.0.1:{port} within 2 s"
    )
    assert result.stdout == ""


def test_the_connect_timeout_comes_from_config_or_environment(tmp_path: Path) -> None:
    port = _closed_port()
    (tmp_path / "config.yaml").write_text(f"kafka: {{bootstrap_servers: '127.0.0.1:{port}'}}\n")
    result = ingestor("tail", "news.published", cwd=tmp_path, env={"INGESTOR_KAFKA__CONNECT_TIMEOUT": "1.5"})
    assert result.returncode == 1
    assert (
        _one_line(result.stderr) == f"ingestor tail: cannot reach the broker at 127.0.0.1:{port} within 1.5 s"
    )


def test_an_unusable_ca_file_is_a_config_error_not_an_outage(tmp_path: Path) -> None:
    """Readable, so the loader lets it through, but not a CA bundle: the first client built says
    which key and file, exit 2, instead of retrying it as an unreachable broker."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    port = _closed_port()
    (tmp_path / "config.yaml").write_text(
        f"kafka: {{bootstrap_servers: '127.0.0.1:{port}', security_protocol: SSL, ssl_cafile: {ca}}}\n"
    )
    for command in (["tail", "news.published"], ["run", "--stage", "parse"]):
        result = ingestor(*command, "--config", str(tmp_path / "config.yaml"), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr)  # the daemon's log lines go to stdout
        assert line.startswith(f"ingestor: config: kafka.ssl_cafile: {ca}: cannot be used: ")
