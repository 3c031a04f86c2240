"""A feed's definition as the fetch stage keeps it: a slotted record, its options shared.

``FeedConfig`` (pydantic) stays what a definition is validated as, at every boundary:
config.yaml, the feeds topic (``feeds.decode_feed``), the command line.  But a fetcher owns
its share of up to millions of feeds for as long as it runs, and a model instance per feed
was the largest thing it held (issue 15): about 820 bytes each (a ``__dict__`` of 17 fields,
the set of fields given, an empty headers dict), although all but the id and the URL are
the same for most feeds.  Here a feed is its id, its URL and one ``FeedOptions`` — everything
else in the definition — and equal options are one shared instance (all-default ones, the
common case, are ``DEFAULTS``), so a feed costs one small object beside its two strings.

``FeedSpec`` reads like ``FeedConfig`` (the same attribute names and values), so the fetch
path takes either (``AnyFeed``); ``to_config`` gives the model back, equal to the one the spec
was made from.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from yarl import URL

from ingestor.config import FeedConfig, FeedFormat, FullTextMode
from ingestor.secrets import Secret

_OPTION_FIELDS = (
    "timezone",
    "interval",
    "min_interval",
    "format",
    "language",
    "full_text",
    "user_agent",
    "headers",
    "enabled",
    "username",
    "password",
    "proxy",
    "proxy_username",
    "proxy_password",
)


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class FeedOptions:
    """Everything a definition holds but its id and URL, with ``FeedConfig``'s defaults.

    ``headers`` keeps the configured order (the order they are sent in); equality, as for the
    model's dict, ignores it.
    """

    timezone: str = "UTC"
    interval: float | None = None
    min_interval: float | None = None
    format: FeedFormat = "auto"
    language: str | None = None
    full_text: FullTextMode | None = None
    user_agent: str | None = None
    headers: tuple[tuple[str, Secret], ...] = ()
    enabled: bool = True
    username: str | None = None
    password: Secret | None = None
    proxy: str | None = None
    proxy_username: str | None = None
    proxy_password: Secret | None = None
    #: nothing of the feed's own to resolve or send per request (no headers, credentials or
    #: proxy): what most feeds are, so the fetcher skips that work for them (issue 15)
    plain: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        plain = not self.headers and self.username is None and self.password is None and self.proxy is None
        object.__setattr__(self, "plain", plain)

    def _key(self) -> tuple[object, ...]:
        fields = (getattr(self, name) for name in _OPTION_FIELDS if name != "headers")
        return (*fields, frozenset(self.headers))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeedOptions):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


#: The options of a feed that sets nothing but its id and URL (and so of most feeds).
DEFAULTS = FeedOptions()

#: Live options by their exact fields (header order included), so that feeds defined alike
#: share one instance; weak, so the options of feeds that are gone go with them.
_SHARED: weakref.WeakValueDictionary[tuple[object, ...], FeedOptions] = weakref.WeakValueDictionary()


def shared_options(options: FeedOptions) -> FeedOptions:
    """The one live instance equal (field for field, in order) to ``options``."""
    if options == DEFAULTS and not options.headers:
        return DEFAULTS
    key = tuple(getattr(options, name) for name in _OPTION_FIELDS)
    try:
        found = _SHARED.get(key)
    except TypeError:  # an unhashable value (never from a validated FeedConfig): not shared
        return options
    if found is not None:
        return found
    _SHARED[key] = options
    return options


def host_of(url: str) -> str:
    """The key of a feed's per-host line: politeness is owed to a host, not to a URL.

    Interned: many feeds share a host, and at a million feeds one string per host instead of
    one per feed is tens of MiB (issue 15)."""
    return _host(URL(url))


def _host(url: URL) -> str:
    return sys.intern((url.host or "").lower())


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One feed's definition, read like a ``FeedConfig``: ``spec.url``, ``spec.user_agent``, ...;
    and ``host``, the host its politeness is owed to (``host_of`` its URL)."""

    id: str
    url: str
    options: FeedOptions = DEFAULTS
    host: str = field(init=False, compare=False, repr=False)
    #: whether ``url`` is already in the form yarl gives it (encoded, host in lower case and
    #: ASCII, no dot segments): then each fetch parses it with ``encoded=True``, skipping the
    #: quoting pass that was about 3% of a fetcher's CPU (``start_url``)
    url_canonical: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parsed = URL(self.url)
        object.__setattr__(self, "host", _host(parsed))
        object.__setattr__(self, "url_canonical", str(parsed) == self.url)

    @classmethod
    def of(cls, feed: FeedConfig) -> FeedSpec:
        """The spec of a validated definition (its options shared with equal ones)."""
        options = FeedOptions(
            feed.timezone,
            feed.interval,
            feed.min_interval,
            feed.format,
            feed.language,
            feed.full_text,
            feed.user_agent,
            tuple(feed.headers.items()),
            feed.enabled,
            feed.username,
            feed.password,
            feed.proxy,
            feed.proxy_username,
            feed.proxy_password,
        )
        return cls(feed.id, feed.url, shared_options(options))

    def to_config(self) -> FeedConfig:
        """The definition as the model again (equal to the one this spec was made of)."""
        fields: dict[str, Any] = {
            name: value
            for name in _OPTION_FIELDS
            if (value := getattr(self.options, name)) != getattr(DEFAULTS, name)
        }
        if "headers" in fields:
            fields["headers"] = dict(self.options.headers)
        return FeedConfig.model_construct(id=self.id, url=self.url, **fields)

    @property
    def timezone(self) -> str:
        return self.options.timezone

    @property
    def interval(self) -> float | None:
        return self.options.interval

    @property
    def min_interval(self) -> float | None:
        return self.options.min_interval

    @property
    def format(self) -> FeedFormat:
        return self.options.format

    @property
    def language(self) -> str | None:
        return self.options.language

    @property
    def full_text(self) -> FullTextMode | None:
        return self.options.full_text

    @property
    def user_agent(self) -> str | None:
        return self.options.user_agent

    @property
    def headers(self) -> Mapping[str, Secret]:
        return dict(self.options.headers)

    @property
    def enabled(self) -> bool:
        return self.options.enabled

    @property
    def username(self) -> str | None:
        return self.options.username

    @property
    def password(self) -> Secret | None:
        return self.options.password

    @property
    def proxy(self) -> str | None:
        return self.options.proxy

    @property
    def proxy_username(self) -> str | None:
        return self.options.proxy_username

    @property
    def proxy_password(self) -> Secret | None:
        return self.options.proxy_password


#: What the fetch path reads a feed's definition from: the stage's spec, or a model (a config
#: feed in a test, the article fetcher's page of a feed entry, robots.txt).
AnyFeed: TypeAlias = FeedConfig | FeedSpec


def start_url(feed: AnyFeed) -> URL:
    """A feed's URL parsed for a fetch: without the quoting pass when it is canonical already
    (the same ``URL`` either way: ``tests/unit/test_fetch_feedspec.py``)."""
    if isinstance(feed, FeedSpec) and feed.url_canonical:
        return URL(feed.url, encoded=True)
    return URL(feed.url)
