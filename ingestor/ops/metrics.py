"""Every Prometheus metric family the daemon exports, in one registry.

A dedicated ``CollectorRegistry`` (not prometheus-client's global one) so that /metrics serves
exactly these families and tests read the same object the server renders.  Counters and
histograms are incremented where the work happens (one line at each place); gauges that
describe *current* state (consumer lag, assignment, connection, dedup state, the fetch queue)
are read from the running stages at scrape time by ``StageCollector``, so they can never be
left stale by a code path that forgot to update them.

Label sets stay small on purpose: ``outcome``/``reason``/``event``/``shape``/``stage`` are
enums, so /metrics is the same size at 10 feeds and at 100,000.  Feed ids, item ids and URLs
never label a default family: per-feed detail lives in ``ingestor feeds status`` and the log
lines (which name the feed).  Only the feeds listed in ``ops.labeled_feeds`` also update the
``ingestor_feed_*`` families below; every other feed creates no series there at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # memory, fds, CPU, GC
    REGISTRY.register(_collector)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LATENESS_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_PARSE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

BUILD_INFO = Info("ingestor_build", "The running news-ingestor version.", registry=REGISTRY)

# ---- fetch ----------------------------------------------------------------------------------
FETCHES = Counter(
    "ingestor_fetches",
    "Fetch attempts by outcome (ok, not_modified, unchanged, http_error, timeout, ...).",
    ["outcome"],
    registry=REGISTRY,
)
FETCH_DURATION = Histogram(
    "ingestor_fetch_duration_seconds",
    "Wall time of one fetch attempt, retries and body download included.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
FETCH_BYTES = Counter(
    "ingestor_fetch_bytes", "Body bytes read from feeds (after decompression).", registry=REGISTRY
)
FETCH_SLOTS_SKIPPED = Counter(
    "ingestor_fetch_slots_skipped",
    "Slots of feeds' cadences passed over: a poll so late that its next slot was too close, so it "
    "waits for the one after (the fetcher is overloaded, or catching up after an outage).",
    registry=REGISTRY,
)
FETCH_LATENESS = Histogram(
    "ingestor_fetch_schedule_lateness_seconds",
    "How long after its due time a feed's fetch actually started (concurrency caps, a busy loop).",
    buckets=_LATENESS_BUCKETS,
    registry=REGISTRY,
)

# ---- fetch: article pages (full text) -------------------------------------------------------
ARTICLE_FETCHES = Counter(
    "ingestor_article_fetches",
    "Attempts at an entry's linked page, by outcome (page, or the failure: http_404, http_5xx, "
    "timeout, robots_disallowed, not_html, ...).",
    ["outcome"],
    registry=REGISTRY,
)
ARTICLE_FALLBACKS = Counter(
    "ingestor_article_fallbacks",
    "Entries published with the feed's text because their page could not be had, by reason "
    "(deadline, http_404, robots_disallowed, blocked, too_large, not_html, ...).",
    ["reason"],
    registry=REGISTRY,
)
ARTICLE_ROBOTS_REFUSALS = Counter(
    "ingestor_article_robots_refusals",
    "Article pages not fetched because the site's robots.txt disallows them.",
    registry=REGISTRY,
)

# ---- parse ----------------------------------------------------------------------------------
ITEMS_PARSED = Counter(
    "ingestor_items_parsed",
    "Items (feed entries, articles, live fragments) produced to news.items, by page shape "
    "(feed, html, text; full_text: a teaser entry from an article record, with either text).",
    ["shape"],
    registry=REGISTRY,
)
PARSE_FAILURES = Counter(
    "ingestor_parse_failures",
    "news.raw messages the parser refused, by reason (they go to the DLQ).",
    ["reason"],
    registry=REGISTRY,
)
PARSE_DURATION = Histogram(
    "ingestor_parse_duration_seconds",
    "Time to parse one news.raw document.",
    buckets=_PARSE_BUCKETS,
    registry=REGISTRY,
)
# No feed label on these: a timeout or a drop is looked up in the log line, which names the feed.
PARSE_TIMEOUTS = Counter(
    "ingestor_parse_timeouts_total",
    "Documents whose parse ran past parse.deadline; the worker was killed and the message dead-lettered.",
    registry=REGISTRY,
)
PARSE_WORKER_RESTARTS = Counter(
    "ingestor_parse_worker_restarts_total",
    "Parse worker processes killed or lost mid-document and replaced, by reason "
    "(timeout, crash, killed, cancelled).",
    ["reason"],
    registry=REGISTRY,
)
ITEMS_DROPPED = Counter(
    "ingestor_parse_items_dropped_total",
    "Items a parsed document held but the parser dropped, by reason (over_item_cap, duplicate_id).",
    ["reason"],
    registry=REGISTRY,
)
# Full text behind feed entries (docs/architecture.md): parse's side.
ARTICLE_REQUESTS = Counter(
    "ingestor_parse_article_requests_total",
    "Teaser feed entries sent to topics.article_requests for their linked page (not to news.items).",
    registry=REGISTRY,
)
FULL_TEXT_ITEMS = Counter(
    "ingestor_parse_full_text_items_total",
    "Entries published from article records, by body_source (page: merged with the page's text; "
    "feed: a fallback with the feed's text).",
    ["body_source"],
    registry=REGISTRY,
)
FULL_TEXT_FALLBACKS = Counter(
    "ingestor_parse_full_text_fallbacks_total",
    "Entries published with the feed's text instead of the page's, by reason (the fetcher's: deadline, "
    "http_404, robots_disallowed, ...; parse's: not_an_article, or why the page was refused).",
    ["reason"],
    registry=REGISTRY,
)
FULL_TEXT_MODE_UNKNOWN = Counter(
    "ingestor_parse_full_text_mode_unknown_total",
    "news.raw documents whose feed-full-text header was not auto, always or never (read as never).",
    registry=REGISTRY,
)

# ---- dedup / publish ------------------------------------------------------------------------
ITEMS_PUBLISHED = Counter(
    "ingestor_items_published",
    "Events published to news.published, by event (created, updated).",
    ["event"],
    registry=REGISTRY,
)
ITEMS_UNCHANGED = Counter(
    "ingestor_items_unchanged",
    "Items dedup dropped because their id and content hash were already published.",
    registry=REGISTRY,
)
LAST_PUBLISH = Gauge(
    "ingestor_last_publish_timestamp_seconds",
    "Unix time of the last event this process published.",
    registry=REGISTRY,
)

# ---- consume loop (every consuming stage) ---------------------------------------------------
RECORDS = Counter(
    "ingestor_consumer_records",
    "Records a stage consumed and handled (handled includes sent to the DLQ).",
    ["stage"],
    registry=REGISTRY,
)
DLQ_MESSAGES = Counter(
    "ingestor_dlq_messages",
    "Messages a stage sent to the DLQ, by stage and reason (error type).",
    ["stage", "reason"],
    registry=REGISTRY,
)
STAGE_RESTARTS = Counter(
    "ingestor_stage_restarts",
    "Consumer/producer teardowns and rebuilds after an error (broker outage, restore failure).",
    ["stage"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "ingestor_consumer_rebalances",
    "Completed partition assignments (group joins) per stage.",
    ["stage"],
    registry=REGISTRY,
)
BATCHES_WITHHELD = Counter(
    "ingestor_batches_withheld",
    "Batches not processed because the group coordinator did not confirm this member's generation "
    "right before them (reason: rebalancing, fenced, unreachable); they are re-read by the owner.",
    ["stage", "reason"],
    registry=REGISTRY,
)
COMMIT_FAILURES = Counter(
    "ingestor_commit_failures",
    "Offset commits refused because the group rebalanced mid-batch (the batch is re-read downstream-safe).",
    ["stage"],
    registry=REGISTRY,
)

# ---- per-feed, only for the feeds in ops.labeled_feeds ------------------------------------------
# Separate families (not an optional label on the ones above) so that a dashboard summing a
# default family never double-counts, and so that an empty allowlist exports no feed label.
FEED_FETCHES = Counter(
    "ingestor_feed_fetches",
    "Fetch attempts of an allowlisted feed (ops.labeled_feeds), by outcome.",
    ["feed", "outcome"],
    registry=REGISTRY,
)
FEED_FAILURES = Gauge(
    "ingestor_feed_consecutive_failures",
    "Failed fetches in a row of an allowlisted feed; 0 after a success.",
    ["feed"],
    registry=REGISTRY,
)
FEED_LAST_SUCCESS = Gauge(
    "ingestor_feed_last_success_timestamp_seconds",
    "Unix time of an allowlisted feed's last successful fetch (any 2xx/304 outcome).",
    ["feed"],
    registry=REGISTRY,
)
FEED_ITEMS_PARSED = Counter(
    "ingestor_feed_items_parsed",
    "Items the parser produced to news.items from an allowlisted feed.",
    ["feed"],
    registry=REGISTRY,
)
FEED_PARSE_FAILURES = Counter(
    "ingestor_feed_parse_failures",
    "news.raw messages of an allowlisted feed the parser refused (the reason is in the log line).",
    ["feed"],
    registry=REGISTRY,
)
FEED_ITEMS_PUBLISHED = Counter(
    "ingestor_feed_items_published",
    "Events published to news.published for an allowlisted feed (created and updated).",
    ["feed"],
    registry=REGISTRY,
)

_PER_FEED: tuple[Counter | Gauge, ...] = (
    FEED_FETCHES,
    FEED_FAILURES,
    FEED_LAST_SUCCESS,
    FEED_ITEMS_PARSED,
    FEED_PARSE_FAILURES,
    FEED_ITEMS_PUBLISHED,
)

# ---- ops (set by the ops server) ------------------------------------------------------------
BROKER_UP = Gauge(
    "ingestor_broker_up", "1 when the last metadata request to the brokers succeeded.", registry=REGISTRY
)
EVENT_LOOP_LAG = Gauge(
    "ingestor_event_loop_lag_seconds",
    "How late the event loop ran a 0.5 s timer: a blocked loop stalls fetches and consumers alike.",
    registry=REGISTRY,
)
READY = Gauge("ingestor_ready", "1 when /readyz answers 200.", registry=REGISTRY)


def _version() -> str:
    try:
        return metadata.version("news-ingestor")
    except metadata.PackageNotFoundError:
        return "unknown"


BUILD_INFO.info({"version": _version()})


# ---- call-site helpers --------------------------------------------------------------------------

_labeled_feeds: frozenset[str] = frozenset()


def set_labeled_feeds(feeds: Iterable[str]) -> None:
    """Set the allowlist (``ops.labeled_feeds``) whose feeds get their own ``ingestor_feed_*`` series.

    Process-wide like the registry itself.  Series of feeds no longer listed are removed, so a
    daemon restarted in-process (tests, reloads) does not keep exporting them.
    """
    global _labeled_feeds
    new = frozenset(feeds)
    dropped = _labeled_feeds - new
    _labeled_feeds = new
    if dropped:
        for family in _PER_FEED:
            _remove_feeds(family, dropped)


def _remove_feeds(family: Counter | Gauge, feeds: frozenset[str]) -> None:
    """Remove every series of ``family`` whose ``feed`` label is in ``feeds``.

    ``remove`` needs the full label tuple, so the tuples are read back from the family's samples
    (their label dicts keep the declared label order).
    """
    doomed = {
        tuple(sample.labels.values())
        for metric in family.collect()
        for sample in metric.samples
        if sample.labels.get("feed") in feeds
    }
    for values in doomed:
        family.remove(*values)


#: outcome -> its (FETCHES, FETCH_DURATION) series; outcomes are a closed set, never removed
_fetch_children: dict[str, tuple[Counter, Histogram]] = {}


def observe_fetch(
    feed: str, outcome: str, *, success: bool, duration_s: float, size: int, failures: int
) -> None:
    """Everything one ``feed_fetched`` line says, as metrics; per-feed only when allowlisted."""
    children = _fetch_children.get(outcome)
    if children is None:  # ``labels()`` takes a lock and builds a key: once per outcome, not per fetch
        children = _fetch_children[outcome] = (FETCHES.labels(outcome), FETCH_DURATION.labels(outcome))
    children[0].inc()
    children[1].observe(max(0.0, duration_s))
    FETCH_BYTES.inc(max(0, size))
    if feed in _labeled_feeds:
        FEED_FETCHES.labels(feed, outcome).inc()
        FEED_FAILURES.labels(feed).set(failures)
        if success:
            FEED_LAST_SUCCESS.labels(feed).set(time.time())


def observe_parsed(feed: str, shape: str, items: int) -> None:
    """One parsed ``news.raw`` document; here so the allowlist check is not repeated per call site."""
    ITEMS_PARSED.labels(shape).inc(items)
    if feed in _labeled_feeds:
        FEED_ITEMS_PARSED.labels(feed).inc(items)


def observe_parse_failure(feed: str, reason: str) -> None:
    """One refused ``news.raw`` document; the per-feed family has no ``reason`` (the log has it)."""
    PARSE_FAILURES.labels(reason).inc()
    if feed in _labeled_feeds:
        FEED_PARSE_FAILURES.labels(feed).inc()


def observe_published(feed: str, event: str) -> None:
    ITEMS_PUBLISHED.labels(event).inc()
    LAST_PUBLISH.set(time.time())
    if feed in _labeled_feeds:
        FEED_ITEMS_PUBLISHED.labels(feed).inc()


def partition_lag(highwater: int | None, position: int | None) -> int | None:
    """Records between the consumer's position and the partition's end; None when unknown.

    Clamped at 0: a broker's reported end can be short of its last batch (see ingestor/kafka),
    so a consumer that read a multi-record batch is "past the end".
    """
    if highwater is None or position is None:
        return None
    return max(0, highwater - position)


class _TopicPartition(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


class _LagConsumer(Protocol):
    def assignment(self) -> Iterable[Any]: ...
    def highwater(self, partition: Any) -> int | None: ...
    async def position(self, partition: Any) -> int: ...


async def sample_lag(consumer: _LagConsumer, lag: dict[Any, int]) -> None:
    """Refresh ``lag`` from what the consumer already knows (no broker round trip).

    Only partitions with a known highwater are asked for their position: a fetch happened, so
    the position is valid and ``position()`` returns at once instead of waiting for a reset.
    """
    assigned = set(consumer.assignment())
    for tp in list(lag):
        if tp not in assigned:
            del lag[tp]
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # revoked between the two calls; the next poll fixes it
            continue
        value = partition_lag(highwater, position)
        if value is not None:
            lag[tp] = value


# ---- scrape-time gauges from the running stages ---------------------------------------------------


class LoopStatsView(Protocol):
    connected: bool
    assigned: set[Any]
    lag: dict[Any, int]
    last_poll_at: float | None
    last_batch_at: float | None
    assigned_at: float | None


class ConsumeLoopView(Protocol):
    @property
    def stage(self) -> str: ...
    @property
    def stats(self) -> LoopStatsView: ...
    @property
    def running(self) -> bool: ...


class FetchHealthView(Protocol):
    @property
    def running(self) -> bool: ...
    @property
    def feeds(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def waiting_for_host(self) -> int: ...
    @property
    def overdue_seconds(self) -> float: ...
    @property
    def articles_pending(self) -> int | None: ...


def consume_loop_of(stage: object) -> ConsumeLoopView | None:
    loop = getattr(stage, "loop", None)
    return loop if loop is not None and hasattr(loop, "stats") else None


def fetch_health_of(stage: object) -> FetchHealthView | None:
    """The fetch stage's ``health()``; other stages' health objects lack the schedule fields."""
    health = getattr(stage, "health", None)
    result = health() if callable(health) else None
    return result if hasattr(result, "overdue_seconds") else None


class StageCollector(Collector):
    """Current-state gauges, read from whatever stages ``stages()`` returns at scrape time."""

    def __init__(self, stages: Callable[[], Mapping[str, object]]) -> None:
        self._stages = stages

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on which stages run; unchecked registration is fine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ingestor_stage_up", "1 while a stage's task runs.", labels=["stage"])
        connected = GaugeMetricFamily(
            "ingestor_broker_connected",
            "1 while a stage's Kafka consumer/producer session is up (0 while it is rebuilt).",
            labels=["stage"],
        )
        assigned = GaugeMetricFamily(
            "ingestor_consumer_assigned_partitions",
            "Partitions this instance owns per stage.",
            labels=["stage"],
        )
        lag = GaugeMetricFamily(
            "ingestor_consumer_lag",
            "Records not yet consumed per owned partition (highwater - position, clamped at 0).",
            labels=["stage", "topic", "partition"],
        )
        last_poll = GaugeMetricFamily(
            "ingestor_consumer_last_poll_timestamp_seconds",
            "Unix time a stage's loop last came back to poll; a stuck batch stops it.",
            labels=["stage"],
        )
        dedup_state = GaugeMetricFamily(
            "ingestor_dedup_state_items", "Item ids held in dedup state (restored + new)."
        )
        fetch = {
            name: GaugeMetricFamily(f"ingestor_fetch_{name}", doc)
            for name, doc in (
                ("feeds", "Feeds this fetcher schedules."),
                ("in_flight", "Fetches running now."),
                ("waiting_for_host", "Due feeds waiting for their host's concurrency slot."),
                ("overdue_seconds", "How late the most overdue feed in the schedule is."),
            )
        }
        articles_pending = GaugeMetricFamily(
            "ingestor_articles_pending",
            "Feed entries whose linked page is still wanted (pending, or fallen back and still tried).",
        )
        for name, stage in self._stages().items():
            loop = consume_loop_of(stage)
            if loop is not None:
                stats = loop.stats
                up.add_metric([name], float(loop.running))
                connected.add_metric([name], float(stats.connected))
                assigned.add_metric([name], float(len(stats.assigned)))
                if stats.last_poll_at is not None:
                    last_poll.add_metric([name], stats.last_poll_at)
                for tp, value in sorted(stats.lag.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
                    lag.add_metric([name, tp.topic, str(tp.partition)], float(value))
            size = getattr(stage, "state_size", None)
            if isinstance(size, int):
                dedup_state.add_metric([], float(size))
            health = fetch_health_of(stage)
            if health is not None:
                up.add_metric([name], float(health.running))
                fetch["feeds"].add_metric([], float(health.feeds))
                fetch["in_flight"].add_metric([], float(health.in_flight))
                fetch["waiting_for_host"].add_metric([], float(health.waiting_for_host))
                fetch["overdue_seconds"].add_metric([], health.overdue_seconds)
                if health.articles_pending is not None:
                    articles_pending.add_metric([], float(health.articles_pending))
        yield from (up, connected, assigned, lag, last_poll, dedup_state, *fetch.values(), articles_pending)
