"""config.yaml as pydantic models: validated once at start-up, with environment overrides.

Environment overrides: ``INGESTOR_<SECTION>__<KEY>`` (double underscore between levels),
e.g. ``INGESTOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or
``INGESTOR_FETCH__ALLOW_PRIVATE_NETWORKS=true``.  Lists such as ``feeds`` take JSON:
``INGESTOR_FEEDS='[{"id": "x", "url": "https://..."}]'``.  The environment wins over the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import zoneinfo
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError
from yarl import URL

from ingestor.secrets import LoadedSecret, Secret, mask_url

#: Possessive runs: the spaces around the unit are read one way only (with plain ``\s*`` a
#: long run of spaces before a stray character backtracked quadratically: 64 KB took 16 s).
_DURATION = re.compile(r"^\s*+(\d++(?:\.\d++)?)\s*+(ms|s|m|h|d)?\s*+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _shown(value: Any) -> str:
    """A rejected value as the error repeats it: short, and ``nan``/``inf`` rather than a repr."""
    text = str(value) if isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration(value: Any, *, positive: bool = False) -> float:
    """Seconds from ``1``, ``1.5``, ``"30s"``, ``"5m"``, ``"2h"``, ``"250ms"``.

    Finite and not negative (``positive``: above zero): YAML reads ``.nan`` and ``.inf`` as
    floats, and a NaN timeout compares false with everything, so a timer built on it
    silently never fires.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a number of seconds or a string like '30s', '5m' (got {_shown(value)})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds (30) or '30s', '5m', '2h'")
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"must be a finite number of seconds {bound} (got {_shown(value)})")
    return seconds


def parse_positive_duration(value: Any) -> float:
    """A duration where zero makes no sense (a timeout, an interval, a lease)."""
    return parse_duration(value, positive=True)


#: Seconds, finite, >= 0 (0 means "at once" / "no wait").
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: Seconds, finite, > 0: timeouts, intervals, leases.
PositiveDuration = Annotated[float, BeforeValidator(parse_positive_duration)]
_SIZE = re.compile(r"^\s*+(\d++)\s*+(B|KiB|MiB|GiB|KB|MB|GB)?\s*+$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(value: Any) -> int:
    """Bytes from ``1048576`` or ``"15MiB"``; never negative (a negative cap refuses everything)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"must be a size >= 0 bytes (got {value})")
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    raise ValueError(f"{_shown(value)} is not a size; use bytes (1048576) or '15MiB'")


ByteSize = Annotated[int, BeforeValidator(parse_size)]


def check_cidr(value: Any) -> str:
    """A network as the fetch guard parses it (``ipaddress.ip_network(strict=False)``), so a
    typo fails at start-up rather than when the fetcher first builds its guard."""
    if not isinstance(value, str):
        raise ValueError(f"must be a CIDR like '10.0.0.0/8' (got {_shown(value)})")
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR like '10.0.0.0/8' or 'fd00::/8'") from None
    return value.strip()


Cidr = Annotated[str, BeforeValidator(check_cidr)]


def _port(text: str, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not text.isdigit() or not low <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number in {low}..65535")
    return int(text)


def check_listen(value: Any) -> str:
    """``host:port``, ``[::1]:port`` or ``:port`` (all interfaces); port 0 picks a free one."""
    if not isinstance(value, str):
        raise ValueError(f"must be host:port (got {_shown(value)})")
    _host, sep, port = value.strip().rpartition(":")
    if not sep:
        raise ValueError(f"{value!r} is not host:port")
    _port(port, allow_zero=True)
    return value


#: A listen address, checked where it is configured (the bind itself happens much later).
ListenAddress = Annotated[str, BeforeValidator(check_listen)]


def check_bootstrap_servers(value: Any) -> str:
    """``embedded`` or ``host:port[,host:port...]`` with every port in 1..65535."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be 'embedded' or host:port[,host:port] (got {_shown(value)})")
    if value.strip().lower() == "embedded":
        return value
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not server.strip() or (sep and not host.strip("[]")):
            raise ValueError(f"{server.strip()!r} is not host:port")
        if sep and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{server.strip()!r}: port {port!r} is not a number in 1..65535")
    return value


BootstrapServers = Annotated[str, BeforeValidator(check_bootstrap_servers)]


def check_readable_file(value: Path | str | None) -> Path | str | None:
    """The file exists, is a regular file and can be opened: a missing CA file would otherwise
    show up only as a connection error, retried for ever without naming the path."""
    if value is None:
        return None
    path = Path(value).expanduser()
    try:
        if path.is_dir():
            raise ValueError(f"{str(value)!r} is a directory, not a file")
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        raise ValueError(f"{str(value)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{str(value)!r} is not readable: {exc.strerror or exc}") from None
    return value


#: Keys naming a file the process reads: checked for readability when the config is loaded.
_FILE_KEYS = ("_file", "cafile", "certfile", "keyfile")
#: Off only to validate a config meant for another machine (a manifest's, in CI).
_CHECK_FILES: ContextVar[bool] = ContextVar("ingestor_config_check_files", default=True)


class _Section(BaseModel):
    """Unknown keys are errors, floats are finite, and every ``*_file`` key (the SSL files and
    any added later) names a readable file: all found when the config is loaded, by every command."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _files_are_readable(cls, value: Any, info: ValidationInfo) -> Any:
        checked = _CHECK_FILES.get() and (info.field_name or "").endswith(_FILE_KEYS)
        if checked and isinstance(value, str | Path):
            check_readable_file(value)
        return value


class EmbeddedBrokerConfig(_Section):
    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    storage: str = Field(
        default="memory://ingestor/", description="memory://ingestor/ (kept in memory) or s3://bucket/"
    )
    start_timeout: PositiveDuration = 20.0
    state_dir: Path | None = Field(
        default=None, description="where the running daemon records its embedded broker address"
    )


_INSTANCE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class KafkaConfig(_Section):
    bootstrap_servers: BootstrapServers = "embedded"
    client_id: str = "news-ingestor"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: LoadedSecret | None = Field(
        default=None, description="literal, {env: NAME} or {file: PATH}"
    )
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout: PositiveDuration = 30.0
    connect_timeout: PositiveDuration = Field(
        default=15.0,
        description="how long a one-shot tool (tail, feeds, dlq, replay, status) tries to reach the "
        "brokers before it says so and exits 1; --connect-timeout overrides it",
    )
    idempotent_producer: Literal["auto"] | bool = Field(
        default="auto",
        description="idempotent producers (a retried send is not written twice); auto: if offered",
    )
    static_membership: bool = Field(
        default=True,
        description="every consumer-group member (parse, dedup, the fetchers) joins with a stable "
        "group.instance.id, so a restarted process gets its partitions back at once instead of after "
        "its dead predecessor's session; false: dynamic members only",
    )
    instance_name: str | None = Field(
        default=None,
        description="this host's part of every group.instance.id (<name>-<stage>-<slot>); null: the "
        "host name. Must differ between hosts: two hosts with one name would own the same partitions",
    )
    session_timeout: PositiveDuration = Field(
        default=8.0,
        description="parse and dedup: a member silent this long leaves its group; on the embedded broker a "
        "static member's rejoin takes half of it + 3 s; under 8 s members join as dynamic ones",
    )
    heartbeat_interval: PositiveDuration = Field(
        default=2.0, description="parse and dedup: how often a member tells its group it is alive"
    )
    max_wait: PositiveDuration | None = Field(
        default=None,
        description="longest a consumer's fetch waits on the broker for records (fetch_max_wait); the "
        "embedded broker answers only when it is over, so it is the latency of every hop. null: 50 ms "
        "on the embedded broker with memory storage, else 500 ms (on S3 storage every fetch reads the store)",
    )
    linger: Duration = Field(
        default=0.005, description="how long a producer holds a batch for more records before it sends it"
    )
    embedded: EmbeddedBrokerConfig = EmbeddedBrokerConfig()

    @field_validator("instance_name")
    @classmethod
    def _kafka_instance_name(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: 1 to 100 of A-Z a-z 0-9 . _ - (part of every group.instance.id)")
        return value

    @model_validator(mode="after")
    def _heartbeat_inside_session(self) -> KafkaConfig:
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval:g}) must be < session_timeout "
                f"({self.session_timeout:g})"
            )
        return self

    @property
    def is_embedded(self) -> bool:
        return self.bootstrap_servers.strip().lower() == "embedded"

    @property
    def fetch_wait(self) -> float:
        """``max_wait``, or its default for this broker (see the key's description)."""
        if self.max_wait is not None:
            return self.max_wait
        return 0.05 if self.is_embedded and self.embedded.storage.startswith("memory:") else 0.5


class TopicsConfig(_Section):
    feeds: str = "news.feeds"
    raw: str = "news.raw"
    items: str = "news.items"
    published: str = "news.published"
    dlq: str = "news.dlq"
    article_requests: str = Field(
        default="news.article-requests",
        description="feed entries waiting for their linked page (full text); key: feed id",
    )
    partitions: int = Field(default=6, ge=1, description="for raw, items and published (co-partitioned)")
    replication_factor: int = Field(default=1, ge=1)
    create: bool = Field(default=True, description="create missing topics at start-up")


FeedFormat = Literal["auto", "feed", "text", "html"]
FullTextMode = Literal["auto", "always", "never"]


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
    interval: PositiveDuration | None = Field(
        default=None, description="poll interval; fetch.default_interval"
    )
    min_interval: PositiveDuration | None = None
    format: FeedFormat = "auto"
    language: str | None = None
    full_text: FullTextMode | None = Field(
        default=None,
        description="fetch each entry's linked page for its full text: auto (teasers only), always, "
        "never; null: full_text.mode",
    )
    user_agent: str | None = None
    headers: dict[str, Secret] = Field(
        default_factory=dict,
        description="sent to the feed's own origin only; a value may be {env: NAME} or {file: PATH}",
    )
    enabled: bool = True
    username: str | None = Field(
        default=None, description="HTTP basic auth, sent to the feed's own origin only"
    )
    password: Secret | None = Field(default=None, description="literal, {env: NAME} or {file: PATH}")
    proxy: str | None = Field(default=None, description="http(s) proxy URL for this feed; fetch.proxy")
    proxy_username: str | None = None
    proxy_password: Secret | None = Field(default=None, description="literal, {env: NAME} or {file: PATH}")

    @model_validator(mode="before")
    @classmethod
    def _userinfo_to_fields(cls, data: Any) -> Any:
        """``https://user:pass@host/`` becomes url + username + password (same for the proxy).

        A URL is logged, kept in the fetch state and in news.raw headers; a password field is
        a secret: masked when shown, replaced by a reference on the feeds topic.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for url_key, user_key, password_key in (
            ("url", "username", "password"),
            ("proxy", "proxy_username", "proxy_password"),
        ):
            raw = data.get(url_key)
            if not isinstance(raw, str) or "@" not in raw:
                continue
            try:
                parsed = URL(raw)
            except (ValueError, TypeError):
                continue
            if parsed.raw_user is None and parsed.raw_password is None:
                continue
            if data.get(user_key) is not None or data.get(password_key) is not None:
                raise ValueError(f"{url_key}: credentials both in the URL and in {user_key}/{password_key}")
            data[url_key] = str(parsed.with_user(None))
            if parsed.user:
                data[user_key] = parsed.user
            if parsed.password is not None:
                data[password_key] = parsed.password
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{mask_url(value)!r} is not an http(s) URL")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{mask_url(value)!r} is not an http(s) proxy URL")
        return value


class WebSubConfig(_Section):
    """WebSub (push) subscriptions; off while ``callback_url`` is unset."""

    callback_url: str | None = Field(
        default=None, description="public base URL hubs call back; the feed id is appended as a path segment"
    )
    listen: ListenAddress = Field(
        default="127.0.0.1:9109", description="host:port the callback listener binds"
    )
    secret: LoadedSecret | None = Field(
        default=None,
        description="key each subscription's own hub.secret is derived from (only a nonce is"
        " persisted, so a restart keeps its subscriptions), literal, {env: NAME} or {file: PATH};"
        " unset: random secrets kept in memory only. Unsigned or badly signed pushes are dropped",
    )
    lease: PositiveDuration = Field(default=86400.0, description="hub.lease_seconds asked for")
    max_lease: PositiveDuration = Field(
        default=10 * 86400.0, description="a longer lease granted by a hub is clamped to this"
    )
    renew_before: float = Field(default=0.1, gt=0, lt=1, description="renew this fraction before expiry")
    poll_interval: PositiveDuration = Field(
        default=3600.0, description="fallback poll interval of feeds with an active subscription"
    )
    verify_timeout: PositiveDuration = Field(
        default=30.0, description="wait this long for the hub's verification"
    )
    replay_window: int = Field(
        default=32, ge=1, le=1024, description="a push of one of the feed's last N bodies is not produced"
    )
    unsubscribe_on_shutdown: bool = Field(
        default=False, description="unsubscribe every feed on shutdown (off: a rolling restart keeps them)"
    )
    unsubscribe_timeout: Duration = Field(
        default=5.0, description="how long shutdown waits for the hubs to confirm those unsubscribes"
    )


class FetchConfig(_Section):
    allow_private_networks: bool = False
    user_agent: str = "news-ingestor/0.1 (+https://github.com/news-ingestor)"
    default_interval: PositiveDuration = 300.0
    min_interval: PositiveDuration = Field(default=1.0, description="politeness floor for every feed")
    max_interval: PositiveDuration = 6 * 3600.0
    max_backoff: PositiveDuration = 6 * 3600.0
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="± fraction of the interval")
    connect_timeout: PositiveDuration = 10.0
    read_timeout: PositiveDuration = 30.0
    total_timeout: PositiveDuration = 60.0
    max_body_bytes: ByteSize = Field(default=15 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host_concurrency: int = Field(default=2, ge=1)
    per_host_stagger: Duration = Field(
        default=0.5,
        description=(
            "a host's next concurrent fetch starts only once its latest has run this long (or its"
            " line's head waited this long): a fast host is polled one fetch at a time over its"
            " kept-alive connection; 0: together, up to per_host_concurrency"
        ),
    )
    global_concurrency: int = Field(default=100, ge=1)
    max_idle_connections: int = Field(
        default=8192,
        ge=0,
        description="idle kept-alive connections per fetch process, at most (~10 KB and a descriptor each)",
    )
    keepalive: PositiveDuration = Field(default=15.0, description="how long an idle connection is kept")
    retries: int = Field(default=2, ge=0, le=10, description="in-fetch retries of transient errors")
    retry_backoff: Duration = Field(default=0.5, description="first in-fetch retry delay (doubles, jittered)")
    retry_backoff_max: Duration = 8.0
    proxy: LoadedSecret | None = Field(
        default=None,
        description="http(s) proxy URL for every feed (may carry credentials: {env: NAME} or {file: PATH})",
    )
    secret_env: list[str] = Field(
        default_factory=lambda: ["FEED_SECRET_*"],
        description="environment variables (glob patterns) feed secret references may name",
    )
    secret_dirs: list[str] = Field(
        default_factory=lambda: ["/run/secrets"],
        description="directories feed {file: PATH} references may name",
    )
    allowed_networks: list[Cidr] = Field(
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
        default=300.0,
        description="an unchanged feed's state record (schedule, attempts) is rewritten at most this often",
    )
    log_every_fetch: bool = Field(
        default=False,
        description="a feed_fetched line for every fetch; false: 304s and unchanged bodies (most fetches, "
        "and nothing happened) are counted in the periodic fetch_summary line instead",
    )
    summary_interval: PositiveDuration = Field(
        default=60.0, description="how often the fetch_summary line (outcomes since the last one) is logged"
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
    session_timeout: PositiveDuration = Field(
        default=8.0,
        description="a dead fetcher's feeds move after this; a restarted one gets them back sooner "
        "(kafka.static_membership; on the embedded broker in half of it + 3 s)",
    )
    heartbeat_interval: PositiveDuration = 2.0
    processes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="fetch processes started by `ingestor run`, sharing the feeds through the consumer "
        "group (sharding); null: one per usable core; 1: the fetch stage runs in the daemon's own process",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="event loop of the processes that fetch; uvloop is an option until bench/fetch.py "
        "--loop both shows it cheaper on a quiet machine (docs/operations.md)",
    )
    websub: WebSubConfig = WebSubConfig()

    @property
    def process_count(self) -> int:
        """``processes``, or one per core this process may run on (its CPU affinity; a
        container's CPU quota is not seen: set ``processes``).  Without sharding there is no
        group to share the feeds through: one process; nor with WebSub, whose callbacks are
        served on one port (``websub.listen``)."""
        if not self.sharding or self.websub.callback_url:
            return 1
        if self.processes:
            return self.processes
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> FetchConfig:
        """Pairs that only make sense one way round: each alone is valid, the pair is not."""
        for low, high, strict in (
            ("min_interval", "max_interval", False),
            ("retry_backoff", "retry_backoff_max", False),
            ("heartbeat_interval", "session_timeout", True),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a > b or (strict and a == b):
                relation = "<" if strict else "<="
                raise ValueError(f"{low} ({a:g}) must be {relation} {high} ({b:g})")
        if (self.processes or 1) > 1 and (not self.sharding or self.websub.callback_url):
            raise ValueError(
                "processes > 1 needs sharding (the processes share the feeds through its group) and "
                "no websub.callback_url (its callbacks are served on one port): set processes to 1"
            )
        return self


class FullTextConfig(_Section):
    """Full text behind feed entries: a teaser entry's linked page is fetched once (by the fetch
    stage, with the feeds' politeness and guard, plus robots.txt), read by the article extractor
    in the parse workers, and the entry published with the page's text.  See
    docs/architecture.md, "Full text behind feed entries"."""

    mode: FullTextMode = Field(default="auto", description="for feeds that do not set full_text")
    teaser_words: int = Field(default=100, ge=0, description="auto: an entry with fewer words is a teaser")
    deadline: PositiveDuration = Field(
        default=60.0,
        description="an entry whose page is not in by then is published with the feed's text "
        "(body_source: feed); a page that comes later gives an updated version",
    )
    give_up_after: PositiveDuration = Field(
        default=6 * 3600.0, description="a page still failing this long after its entry was seen is given up"
    )
    revisit: PositiveDuration | None = Field(
        default=None,
        description="fetch an entry's page again when the entry is seen this long after the last fetch; "
        "null: never (only a changed link is fetched again)",
    )
    concurrency: int = Field(default=16, ge=1, description="article pages fetched at once per fetcher")
    robots_ttl: PositiveDuration = Field(
        default=3600.0, description="how long a host's robots.txt is trusted"
    )
    remember: PositiveDuration = Field(
        default=30 * 86400.0, description="how long an entry's page is remembered as fetched (state topic)"
    )
    state_topic: str = Field(
        default="news.article-state", description="compacted topic: per entry, its page's fetch state"
    )
    group_id: str = Field(
        default="ingestor-articles", description="consumer group on topics.article_requests"
    )


class ConsumerStageConfig(_Section):
    group_id: str
    max_batch: int = Field(default=200, ge=1)
    max_message_bytes: ByteSize = Field(default=20 * 1024 * 1024, gt=0)


class ParseConfig(ConsumerStageConfig):
    """The parse stage.  Documents are parsed in worker processes, never on the event loop: a
    hostile page that stalls a parser (a regex, a library) costs one worker until its
    ``deadline``, then the worker is killed and replaced and the message goes to the DLQ
    (``parse_timeout``), while fetching, heartbeats and ``/livez`` carry on."""

    group_id: str = "ingestor-parse"
    workers: int | None = Field(
        default=None, ge=1, le=64, description="parse worker processes; null: one per usable core"
    )
    deadline: Duration = Field(
        default=10.0, gt=0, description="a document still parsing after this is dead-lettered (parse_timeout)"
    )
    worker_memory: ByteSize | None = Field(
        default=1024**3,
        ge=256 * 1024**2,
        description="address-space cap per worker (RLIMIT_AS): a document needing more is refused as "
        "too_large instead of swapping the host; null: no cap",
    )

    @property
    def worker_count(self) -> int:
        """``workers``, or one per core this process may run on (its CPU affinity, which a
        cpuset or ``taskset`` narrows; a container's CPU quota is not seen: set ``workers``)."""
        if self.workers:
            return self.workers
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0)) or 1
        return os.cpu_count() or 1


class DedupConfig(ConsumerStageConfig):
    group_id: str = "ingestor-dedup"


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class OpsConfig(_Section):
    listen: ListenAddress | None = Field(default=None, description="host:port of /metrics, /livez, /readyz")
    labeled_feeds: list[str] = Field(
        default_factory=list,
        description="feed ids that also get per-feed ingestor_feed_* metric series; "
        "every other feed creates none, so /metrics does not grow with the feed count",
    )


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
    full_text: FullTextConfig = FullTextConfig()
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
    """A config problem, worded for the operator: which key (or file), and what is wrong with it.

    ``problems`` holds one self-contained line per problem, so a command can print each one
    as ``ingestor: config: <line>`` and exit 2, never a traceback.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


#: pydantic's error types, reworded as "must ..." like the custom validators' messages.
_REWORDED = {
    "missing": "required, but not set",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "finite_number": "must be a finite number",
}


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model holding the key at ``loc`` (for "did you mean ..." on an unknown key)."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _env_source(loc: tuple[int | str, ...]) -> str | None:
    """The ``INGESTOR_...`` variable a bad value came from, if the environment set it."""
    names = {name.upper() for name in os.environ}
    parts = [str(part) for part in loc]
    for end in range(len(parts), 0, -1):
        name = "INGESTOR_" + "__".join(parts[:end]).upper()
        if name in names:
            return name
    return None


def _problem(item: Any) -> str:
    loc: tuple[int | str, ...] = tuple(item["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = item["type"]
    if kind == "value_error":
        message = str(item["msg"]).removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        message = "unknown key"
        model = _model_at(loc[:-1])
        if model is not None and isinstance(loc[-1], str):
            close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
            message += f" (did you mean {close[0]!r}?)" if close else ""
    else:
        message = _REWORDED.get(kind, str(item["msg"])).format(**item.get("ctx", {}))
    value = item.get("input")
    if kind not in ("value_error", "extra_forbidden", "missing") and not isinstance(value, dict | list):
        message += f" (got {_shown(value)})"
    source = _env_source(loc)
    return f"{key}: {message}" + (f" (from {source})" if source else "")


def _format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, each naming its dotted key (``fetch.timeout: must be ...``)."""
    return [_problem(item) for item in error.errors()]


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error: YAML keeps the last
    one silently, so a second ``fetch:`` section would quietly drop everything in the first."""


def _unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node.start_mark.line)
        except TypeError:  # an unhashable key: the constructor reports it
            continue
        if first != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {first + 1})", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def _unknown_env_sections() -> list[str]:
    """``INGESTOR_*`` variables naming no section: pydantic-settings ignores them silently, so
    a typo (``INGESTOR_FECTH__PROXY``) would leave the setting at its default unnoticed."""
    sections = list(Settings.model_fields)
    problems = []
    for name in sorted(os.environ):
        if not name.upper().startswith("INGESTOR_"):
            continue
        section = name[len("INGESTOR_") :].split("__", 1)[0].lower()
        if section not in sections:
            close = difflib.get_close_matches(section, sections, n=1)
            hint = f" (did you mean INGESTOR_{close[0].upper()}?)" if close else ""
            problems.append(f"{name}: no config section {section!r}{hint}")
    return problems


def _read_yaml(path: Path) -> Any:
    """The file's YAML, or a ConfigError naming the file and saying what is wrong, in one line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigError(f"{path}: not valid YAML{where}: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: Path | str | None = None, *, overrides: dict[str, Any] | None = None, check_files: bool = True
) -> Settings:
    """Read, merge and validate; raise ConfigError with every problem listed by key.

    ``check_files=False`` skips the readability of ``*file`` keys, for a config validated away
    from the machine it is for (a Kubernetes ConfigMap whose CA file is a mounted Secret).
    """
    data: dict[str, Any] = {}
    file_path = Path(path) if path is not None else None
    if file_path is not None:
        loaded = _read_yaml(file_path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: the top level must be a mapping of sections")
        data = loaded
    if overrides:
        data = _merge(data, overrides)
    if unknown := _unknown_env_sections():
        raise ConfigError(*unknown)
    token = _CHECK_FILES.set(check_files)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(*_format_validation_error(exc)) from None
    except SettingsError as exc:  # an INGESTOR_* variable whose JSON does not parse
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"INGESTOR_{field.group(1).upper()}" if field else "an INGESTOR_* variable"
        key = field.group(1) if field else "(environment)"
        raise ConfigError(f"{key}: {name} is not valid JSON (lists and sections take JSON)") from None
    finally:
        _CHECK_FILES.reset(token)
