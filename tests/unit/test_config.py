"""config.yaml validation: the issue's minimal file, env overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestor.config import ConfigError, load_settings, parse_duration

MINIMAL = """\
kafka:
  bootstrap_servers: "127.0.0.1:19092"   # or "embedded"
fetch:
  allow_private_networks: true           # default false; loopback feeds need it
feeds:
  - id: my-live-page
    url: "http://127.0.0.1:8000/live.txt"
    timezone: Europe/Kyiv
    interval: 1                          # seconds; "30s" and "5m" also accepted
"""


def test_minimal_file_is_accepted_as_is(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL)
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.fetch.allow_private_networks is True
    (feed,) = settings.feeds
    assert (feed.id, feed.timezone, feed.interval) == ("my-live-page", "Europe/Kyiv", 1.0)
    assert (settings.topics.raw, settings.topics.items, settings.topics.published, settings.topics.dlq) == (
        "news.raw",
        "news.items",
        "news.published",
        "news.dlq",
    )


def test_shipped_config_is_valid() -> None:
    settings = load_settings(Path(__file__).resolve().parents[2] / "config.yaml")
    assert settings.kafka.is_embedded
    kyiv = next(
        feed for feed in settings.feeds if feed.url == "https://kyivindependent.com/news-archive/rss/"
    )
    assert kyiv.timezone == "Europe/Kyiv"


def test_environment_overrides_nested_keys_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + "  - id: second\n    url: https://example.org/feed\n")
    monkeypatch.setenv("INGESTOR_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("INGESTOR_FETCH__MAX_BODY_BYTES", "1MiB")
    monkeypatch.setenv("INGESTOR_TOPICS__PUBLISHED", "custom.published")
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.fetch.max_body_bytes == 1024 * 1024
    assert settings.fetch.allow_private_networks is True  # from the file, untouched by the env
    assert settings.topics.published == "custom.published" and settings.topics.raw == "news.raw"
    assert [feed.id for feed in settings.feeds] == ["my-live-page", "second"]


def test_environment_can_replace_the_feed_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INGESTOR_FEEDS", '[{"id": "x", "url": "https://example.org/feed", "interval": "30s"}]'
    )
    (feed,) = load_settings(None).feeds
    assert feed.interval == 30.0


def test_errors_name_every_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: embedded, bogus: 1}\n"
        "feeds:\n"
        "  - {id: a, url: 'ftp://x', timezone: Mars/Olympus, interval: 5x}\n"
        "  - {id: a, url: 'https://example.org/'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    for expected in ("kafka.bogus", "feeds.0.url", "feeds.0.timezone", "feeds.0.interval"):
        assert expected in text


def test_duplicate_feed_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        load_settings(None, overrides={"feeds": [{"id": "a", "url": "https://e.org/1"}] * 2})


@pytest.mark.parametrize(
    ("text", "seconds"), [(1, 1.0), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("250ms", 0.25)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_missing_and_broken_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)
