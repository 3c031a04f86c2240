"""config.yaml as pydantic models: validated once at start-up, with environment overrides.

Environment overrides: ``INGESTOR_<SECTION>__<KEY>`` (double underscore between levels),
e.g. ``INGESTOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or
``INGESTOR_FETCH__ALLOW_PRIVATE_NETWORKS=true``.  Lists such as ``feeds`` take JSON:
``INGESTOR_FEEDS='[{"id": "x", "url": "https://..."}]'``.  The environment wins over the file.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``1``, ``1.5``, ``"30s"``, ``"5m"``, ``"2h"``, ``"250ms"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds (30) or '30s', '5m', '2h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(value: Any) -> int:
    """Bytes from ``1048576`` or ``"15MiB"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    raise ValueError(f"{value!r} is not a size; use bytes (1048576) or '15MiB'")


ByteSize = Annotated[int, BeforeValidator(parse_size)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddedBrokerConfig(_Section):
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    storage: str = Field(default="memory://tansu/", description="memory://tansu/ or s3://bucket/")
    start_timeout: Duration = 20.0
    state_dir: Path | None = Field(
        default=None, description="where the running daemon records its embedded broker address"
    )


class KafkaConfig(_Section):
    bootstrap_servers: str = "embedded"
    client_id: str = "news-ingestor"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout: Duration = 30.0
    idempotent_producer: Literal["auto"] | bool = Field(
        default="auto",
        description="idempotent producers (a retried send is not written twice); auto: if offered",
    )
    embedded: EmbeddedBrokerConfig = EmbeddedBrokerConfig()

    @property
    def is_embedded(self) -> bool:
        return self.bootstrap_servers.strip().lower() == "embedded"


class TopicsConfig(_Section):
    feeds: str = "news.feeds"
    raw: str = "news.raw"
    items: str = "news.items"
    published: str = "news.published"
    dlq: str = "news.dlq"
    partitions: int = Field(default=6, ge=1, description="for raw, items and published (co-partitioned)")
    replication_factor: int = Field(default=1, ge=1)
    create: bool = Field(default=True, description="create missing topics at start-up")


FeedFormat = Literal["auto", "feed", "text", "html"]


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Kyiv')") from exc
    return value


TimeZoneName = Annotated[str, BeforeValidator(_check_timezone)]


class FeedConfig(_Section):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    url: str
    timezone: TimeZoneName = "UTC"
    interval: Duration | None = Field(default=None, description="poll interval; fetch.default_interval")
    min_interval: Duration | None = None
    format: FeedFormat = "auto"
    language: str | None = None
    user_agent: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    username: str | None = Field(
        default=None, description="HTTP basic auth, sent to the feed's own origin only"
    )
    password: str | None = None
    proxy: str | None = Field(default=None, description="http(s) proxy URL for this feed; fetch.proxy")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class WebSubConfig(_Section):
    """WebSub (push) subscriptions; off while ``callback_url`` is unset."""

    callback_url: str | None = Field(
        default=None, description="public base URL hubs call back; the feed id is appended as a path segment"
    )
    listen: str = Field(default="127.0.0.1:9109", description="host:port the callback listener binds")
    secret: str | None = Field(
        default=None, description="HMAC secret (hub.secret); pushes with a bad X-Hub-Signature are refused"
    )
    lease: Duration = Field(default=86400.0, description="hub.lease_seconds asked for")
    renew_before: float = Field(default=0.1, gt=0, lt=1, description="renew this fraction before expiry")
    poll_interval: Duration = Field(
        default=3600.0, description="fallback poll interval of feeds with an active subscription"
    )
    verify_timeout: Duration = Field(default=30.0, description="wait this long for the hub's verification")


class FetchConfig(_Section):
    allow_private_networks: bool = False
    user_agent: str = "news-ingestor/0.1 (+https://github.com/news-ingestor)"
    default_interval: Duration = 300.0
    min_interval: Duration = Field(default=1.0, description="politeness floor for every feed")
    max_interval: Duration = 6 * 3600.0
    max_backoff: Duration = 6 * 3600.0
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="± fraction of the interval")
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 30.0
    total_timeout: Duration = 60.0
    max_body_bytes: ByteSize = 15 * 1024 * 1024
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host_concurrency: int = Field(default=2, ge=1)
    global_concurrency: int = Field(default=100, ge=1)
    retries: int = Field(default=2, ge=0, le=10, description="in-fetch retries of transient errors")
    retry_backoff: Duration = Field(default=0.5, description="first in-fetch retry delay (doubles, jittered)")
    retry_backoff_max: Duration = 8.0
    proxy: str | None = Field(default=None, description="http(s) proxy URL for every feed")
    allowed_networks: list[str] = Field(
        default_factory=list, description="CIDRs the private-network guard lets through (e.g. a proxy)"
    )
    startup_spread: Duration = Field(default=10.0, description="first fetches spread over this window")
    shutdown_grace: Duration = Field(default=3.0, description="in-flight fetches finish within this on stop")
    state_topic: str | None = Field(
        default="news.fetch-state",
        description="compacted topic keeping validators and schedule across restarts; null: none",
    )
    state_attempts: int = Field(default=5, ge=0, le=50, description="recent attempts kept per feed state")
    state_refresh: Duration = Field(
        default=60.0,
        description="an unchanged feed's state record (schedule, attempts) is rewritten at most this often",
    )
    sharding: bool = Field(
        default=True,
        description="fetch the feeds of the news.feeds partitions this instance is assigned (config feeds "
        "are seeded into the topic); false: exactly the config feeds, no consumer group",
    )
    group_id: str | None = Field(
        default=None,
        description="consumer group of the fetchers on topics.feeds; default ingestor-fetch "
        "(ingestor-fetch.<feeds topic> when topics.feeds is not news.feeds)",
    )
    session_timeout: Duration = Field(default=10.0, description="a dead fetcher's feeds move after this")
    heartbeat_interval: Duration = 3.0
    websub: WebSubConfig = WebSubConfig()


class ConsumerStageConfig(_Section):
    group_id: str
    max_batch: int = Field(default=200, ge=1)
    max_message_bytes: ByteSize = 20 * 1024 * 1024


class ParseConfig(ConsumerStageConfig):
    group_id: str = "ingestor-parse"


class DedupConfig(ConsumerStageConfig):
    group_id: str = "ingestor-dedup"


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class OpsConfig(_Section):
    listen: str | None = Field(default=None, description="host:port of /metrics, /livez, /readyz")


class Settings(BaseSettings):
    """The whole configuration; see config.yaml for a commented example."""

    model_config = SettingsConfigDict(
        env_prefix="INGESTOR_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    kafka: KafkaConfig = KafkaConfig()
    topics: TopicsConfig = TopicsConfig()
    fetch: FetchConfig = FetchConfig()
    parse: ParseConfig = ParseConfig()
    dedup: DedupConfig = DedupConfig()
    logging: LoggingConfig = LoggingConfig()
    ops: OpsConfig = OpsConfig()
    feeds: list[FeedConfig] = Field(default_factory=list)

    @field_validator("feeds")
    @classmethod
    def _unique_ids(cls, feeds: list[FeedConfig]) -> list[FeedConfig]:
        seen: set[str] = set()
        for feed in feeds:
            if feed.id in seen:
                raise ValueError(f"feed id {feed.id!r} appears twice")
            seen.add(feed.id)
        return feeds

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it overrides what the file (passed as init kwargs) says.
        return (env_settings, init_settings)


class ConfigError(Exception):
    """A config problem, worded for the operator: which key, and what is wrong with it."""


def _format_validation_error(path: Path | None, error: ValidationError) -> str:
    where = str(path) if path else "configuration"
    lines = [f"{where}: {error.error_count()} problem(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path | str | None = None, *, overrides: dict[str, Any] | None = None) -> Settings:
    """Read, merge and validate; raise ConfigError with every problem listed by key."""
    data: dict[str, Any] = {}
    file_path = Path(path) if path is not None else None
    if file_path is not None:
        try:
            loaded = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{file_path}: no such file") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file_path}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: the top level must be a mapping of sections")
        data = loaded
    if overrides:
        data = _merge(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(file_path, exc)) from None
