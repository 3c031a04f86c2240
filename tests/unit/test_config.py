"""config.yaml validation: the issue's minimal file, env overrides, errors that name the key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingestor.config import _SIZE, ConfigError, load_settings, parse_duration

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


# ---- issue 13: every value checked at load, every error one line naming its key -------------


def _problems(tmp_path: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    problems = caught.value.problems
    assert problems and all("\n" not in problem for problem in problems), problems
    return problems


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "fetch: {connect_timeout: .nan}",
            "fetch.connect_timeout: must be a finite number of seconds > 0 (got nan)",
        ),
        (
            "fetch: {read_timeout: .inf}",
            "fetch.read_timeout: must be a finite number of seconds > 0 (got inf)",
        ),
        ("fetch: {total_timeout: 0}", "fetch.total_timeout: must be a finite number of seconds > 0 (got 0)"),
        (
            "fetch: {startup_spread: -1}",
            "fetch.startup_spread: must be a finite number of seconds >= 0 (got -1)",
        ),
        ("fetch: {retry_backoff: .NaN}", "fetch.retry_backoff: must be a finite number of seconds >= 0"),
        ("kafka: {request_timeout: '0s'}", "kafka.request_timeout: must be a finite number of seconds > 0"),
        ("kafka: {connect_timeout: .nan}", "kafka.connect_timeout: must be a finite number of seconds > 0"),
        ("fetch: {websub: {lease: .inf}}", "fetch.websub.lease: must be a finite number of seconds > 0"),
        ("feeds: [{id: a, url: 'https://e.org/', interval: .nan}]", "feeds.0.interval: must be a finite"),
        ("fetch: {max_body_bytes: -1}", "fetch.max_body_bytes: must be a size >= 0 bytes (got -1)"),
        ("fetch: {max_body_bytes: 0}", "fetch.max_body_bytes: must be > 0 (got 0)"),
        ("dedup: {max_message_bytes: '0MiB'}", "dedup.max_message_bytes: must be > 0 (got 0)"),
        ("fetch: {jitter: .nan}", "fetch.jitter: must be a finite number (got nan)"),
        ("fetch: {websub: {renew_before: .nan}}", "fetch.websub.renew_before: must be a finite number"),
        ("topics: {partitions: 0}", "topics.partitions: must be >= 1 (got 0)"),
        ("fetch: {global_concurrency: 0}", "fetch.global_concurrency: must be >= 1 (got 0)"),
        (
            "fetch: {allowed_networks: ['10.0.0.0/33']}",
            "fetch.allowed_networks.0: '10.0.0.0/33' is not a CIDR",
        ),
        ("fetch: {allowed_networks: [proxy.local]}", "fetch.allowed_networks.0: 'proxy.local' is not a CIDR"),
        ("kafka: {bootstrap_servers: 'k1:9092,k2:0'}", "kafka.bootstrap_servers: 'k2:0': port '0' is not"),
        ("kafka: {bootstrap_servers: 'k1:65536'}", "kafka.bootstrap_servers: 'k1:65536': port '65536'"),
        ("kafka: {embedded: {port: 70000}}", "kafka.embedded.port: must be <= 65535 (got 70000)"),
        ("ops: {listen: '127.0.0.1:99999'}", "ops.listen: port '99999' is not a number in 0..65535"),
        ("ops: {listen: localhost}", "ops.listen: 'localhost' is not host:port"),
        ("fetch: {websub: {listen: 'x:y'}}", "fetch.websub.listen: port 'y' is not a number"),
        (
            "fetch: {min_interval: 10, max_interval: 5}",
            "fetch: min_interval (10) must be <= max_interval (5)",
        ),
        ("fetch: {heartbeat_interval: 8}", "fetch: heartbeat_interval (8) must be < session_timeout (8)"),
        (
            "kafka: {bootstrap_server: x:1}",
            "kafka.bootstrap_server: unknown key (did you mean 'bootstrap_servers'?)",
        ),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path: Path, yaml_text: str, expected: str) -> None:
    problems = _problems(tmp_path, yaml_text + "\n")
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_meaningful_edges_are_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here beyond being readable\n")
    path = tmp_path / "config.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: 'k1:9092, [::1]:9093', ssl_cafile: " + str(ca) + "}\n"
        "fetch: {startup_spread: 0, shutdown_grace: 0, retry_backoff: 0, max_body_bytes: 1,"
        " allowed_networks: ['10.1.2.3/8', 'fd00::/8', '192.0.2.1'], connect_timeout: 250ms}\n"
        "ops: {listen: ':0'}\n"
    )
    settings = load_settings(path)
    assert settings.fetch.connect_timeout == 0.25 and settings.fetch.startup_spread == 0
    assert settings.fetch.allowed_networks == ["10.1.2.3/8", "fd00::/8", "192.0.2.1"]
    assert settings.kafka.connect_timeout == 15.0  # the tools' default


def test_ssl_files_must_be_readable_files(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        f"kafka: {{security_protocol: SSL, ssl_cafile: {tmp_path}/absent.pem, ssl_certfile: {tmp_path}}}\n",
    )
    assert f"kafka.ssl_cafile: '{tmp_path}/absent.pem': no such file" in problems
    assert f"kafka.ssl_certfile: '{tmp_path}' is a directory, not a file" in problems


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, "-5s", True])
def test_parse_duration_refuses_non_finite_and_negative(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_file_problems_are_one_line_naming_the_file(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "feeds:\n  - id: caf\xe9\n".encode("latin-1"))
    assert problem.endswith("config.yaml: not UTF-8 text (byte 0xe9 at offset 18); save it as UTF-8")
    (problem,) = _problems(tmp_path, "kafka:\n  bootstrap_servers: [unclosed\nfetch: {}\n")
    assert "config.yaml: not valid YAML at line 3, column" in problem
    (problem,) = _problems(tmp_path, "fetch:\n  jitter: 0.1\nkafka: {}\nfetch:\n  retries: 1\n")
    assert problem.endswith("not valid YAML at line 4, column 1: key 'fetch' appears twice (first on line 1)")
    with pytest.raises(ConfigError, match="is a directory, not a config file"):
        load_settings(tmp_path)
    with pytest.raises(ConfigError, match=r"absent\.yaml: no such file"):
        load_settings(tmp_path / "absent.yaml")


def test_a_bad_environment_override_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTOR_FETCH__READ_TIMEOUT", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert caught.value.problems == [
        "fetch.read_timeout: must be a finite number of seconds > 0 (got '0') "
        "(from INGESTOR_FETCH__READ_TIMEOUT)"
    ]
    monkeypatch.delenv("INGESTOR_FETCH__READ_TIMEOUT")
    monkeypatch.setenv("INGESTOR_FEEDS", "[{not json")
    with pytest.raises(ConfigError, match=r"^feeds: INGESTOR_FEEDS is not valid JSON"):
        load_settings(None)


def test_an_unusable_ssl_file_is_a_config_error_not_a_broker_outage(tmp_path: Path) -> None:
    """Readable at load time but not a CA bundle: the client factory names the key, and the
    daemon's start-up does not retry it as broker_unavailable (ConfigError is not retried)."""
    from ingestor.config import KafkaConfig
    from ingestor.kafka import KafkaConnection

    garbage = tmp_path / "ca.pem"
    garbage.write_text("this is not a certificate\n")
    connection = KafkaConnection("127.0.0.1:1", KafkaConfig(security_protocol="SSL", ssl_cafile=garbage))
    with pytest.raises(ConfigError, match=rf"^kafka.ssl_cafile: {garbage}: cannot be used"):
        connection.client_kwargs()


def test_environment_typos_are_errors_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGESTOR_FECTH__PROXY", "http://proxy:3128")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert caught.value.problems == [
        "INGESTOR_FECTH__PROXY: no config section 'fecth' (did you mean INGESTOR_FETCH?)"
    ]
    monkeypatch.delenv("INGESTOR_FECTH__PROXY")
    monkeypatch.setenv("INGESTOR_FETCH__CONECT_TIMEOUT", "5")
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert caught.value.problems == [
        "fetch.conect_timeout: unknown key (did you mean 'connect_timeout'?) "
        "(from INGESTOR_FETCH__CONECT_TIMEOUT)"
    ]


def test_file_checks_can_be_skipped_for_a_config_meant_for_another_machine(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("kafka: {ssl_cafile: /etc/news-ingestor/kafka-ca/ca.crt}\n")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(path)
    assert (
        str(load_settings(path, check_files=False).kafka.ssl_cafile) == "/etc/news-ingestor/kafka-ca/ca.crt"
    )
    with pytest.raises(ConfigError, match="no such file"):  # and only for that call
        load_settings(path)


@pytest.mark.timeout(10)
def test_a_duration_or_size_with_a_long_run_of_spaces_is_refused_at_once() -> None:
    # before the possessive runs: 64 KB of spaces before a stray character took 16 s
    started = time.perf_counter()
    for text in ("1" + " " * 65536 + "x", " " * 65536 + "1 x"):
        with pytest.raises(ValueError):
            parse_duration(text)
        assert _SIZE.match(text) is None
    assert time.perf_counter() - started < 1
