"""What an article request and an attempt at its page mean: the pure core of the article fetcher.

* :func:`on_request`: given the stored record, is a request new work (``fetch``), already done
  or in hand (``skip``), or worth fetching again (``refetch``: a changed link or entry, or
  ``full_text.revisit`` elapsed)?
* :func:`classify`: what one fetch (its outcome, status and content type) came to: a page, a
  permanent failure (fall back now), or a transient one (retry, Retry-After as a floor).
* :func:`on_attempt`: the record after an attempt, and what to produce (the page, a fallback).
* :func:`at_deadline` / :func:`wake_at` / :func:`expired`: the clock's part.

No clock and no randomness of their own (``now`` and ``rand`` are passed in), no I/O: the shell
(``articles``) produces, writes the record the decision returns, logs and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from ingestor.config import FetchConfig, FullTextConfig
from ingestor.fetch.article_state import ArticleRequest, ArticleState
from ingestor.fetch.outcome import Outcome

Random = Callable[[], float]  # uniform in [0, 1)

#: statuses whose reason names the status: the ones operators look up
_NAMED_4XX = frozenset({401, 403, 404, 410, 451})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: permanent fetch outcomes and the reason a fallback names
_PERMANENT = {
    Outcome.TOO_LARGE: "too_large",
    Outcome.BLOCKED: "blocked",
    Outcome.TLS: "tls",
    Outcome.REDIRECT_LOOP: "redirect_loop",
    Outcome.PROTOCOL: "protocol",
    Outcome.NOT_A_FEED: "bot_wall",  # a challenge page (the fetcher's bot-wall check) or an empty body
    Outcome.SECRET: "error",
}


@dataclass(frozen=True, slots=True)
class ArticlePolicy:
    """Everything configured that the decisions need, read once from the settings."""

    deadline: float = 60.0
    give_up_after: float = 6 * 3600.0
    revisit: float | None = None
    remember: float = 30 * 86400.0
    backoff_base: float = 10.0
    backoff_max: float = 1800.0

    @classmethod
    def from_config(cls, full_text: FullTextConfig, fetch: FetchConfig) -> ArticlePolicy:
        """The retry backoff scales with the deadline (its first step is a sixth of it, so a
        page failing for a moment still makes the deadline) and is capped at half an hour, or
        ``fetch.max_backoff`` if that is shorter."""
        base = min(10.0, full_text.deadline / 6)
        return cls(
            deadline=full_text.deadline,
            give_up_after=full_text.give_up_after,
            revisit=full_text.revisit,
            remember=full_text.remember,
            backoff_base=base,
            backoff_max=max(base, min(1800.0, fetch.max_backoff)),
        )


# --- requests -----------------------------------------------------------------------------------

RequestAction = Literal["fetch", "skip", "refetch"]


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    action: RequestAction
    why: str
    state: ArticleState | None = None  # the pending record to write first (fetch, refetch)


def pending(request: ArticleRequest, now: float, *, fallback_due: bool = True) -> ArticleState:
    return ArticleState(
        entry_id=request.entry_id,
        feed_id=request.feed_id,
        url=request.url,
        status="pending",
        first_seen=min(request.seen_at, now) if request.seen_at > 0 else now,
        updated_at=now,
        next_try=now,
        fallback_due=fallback_due,
        content_hash=request.content_hash,
        entry=request.entry,
        context=request.context,
    )


def on_request(
    stored: ArticleState | None, request: ArticleRequest, policy: ArticlePolicy, now: float
) -> RequestVerdict:
    """A request against what the state topic says about its entry.

    The same entry re-read from its feed costs nothing, even when its feed text changed (a feed
    that rewrites a teaser or a relative time on every read must not cost a page fetch each
    time): only a changed link is new work with a new deadline, and ``revisit`` fetches a page
    again after that long (a failed revisit keeps the published text: ``fallback_due`` false).
    """
    if stored is None:
        return RequestVerdict("fetch", "new", pending(request, now))
    if stored.url != request.url:
        return RequestVerdict("refetch", "link_changed", pending(request, now))
    if stored.open:
        return RequestVerdict("skip", "in_hand")
    if policy.revisit is not None:
        since = stored.fetched_at if stored.status == "done" and stored.fetched_at else stored.updated_at
        if now - since >= policy.revisit:
            again = pending(request, now, fallback_due=stored.status != "done")
            return RequestVerdict("refetch", "revisit", again)
    return RequestVerdict("skip", stored.status)


# --- attempts -----------------------------------------------------------------------------------


class Kind(StrEnum):
    PAGE = "page"
    PERMANENT = "permanent"
    TRANSIENT = "transient"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at a page, classified: ``reason`` is the fallback reason or the failure."""

    kind: Kind
    reason: str
    retry_after: float | None = None


def reason_for_status(status: int) -> str:
    return f"http_{status}" if status in _NAMED_4XX else "http_4xx"


def is_html(content_type: str | None, body: bytes | None) -> bool:
    """An HTML page: by its declared type, or (no type declared) by its first byte."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime:
        return mime in _HTML_TYPES
    return body is not None and body.lstrip()[:1] == b"<"


def classify(
    outcome: Outcome,
    status: int | None,
    content_type: str | None,
    body: bytes | None,
    retry_after: float | None,
) -> Attempt:
    if outcome is Outcome.OK:
        if not is_html(content_type, body):
            return Attempt(Kind.PERMANENT, "not_html")
        return Attempt(Kind.PAGE, "page")
    if outcome is Outcome.HTTP_4XX and status is not None:
        return Attempt(Kind.PERMANENT, reason_for_status(status))
    if outcome in _PERMANENT:
        return Attempt(Kind.PERMANENT, _PERMANENT[outcome])
    if outcome is Outcome.HTTP_429:
        return Attempt(Kind.TRANSIENT, "http_429", retry_after)
    if outcome is Outcome.HTTP_5XX:
        return Attempt(Kind.TRANSIENT, "http_5xx", retry_after)
    # timeouts, connection and DNS trouble, a refused produce, a bug: worth another try later
    return Attempt(Kind.TRANSIENT, outcome.value)


Produce = Literal["page", "fallback"] | None


@dataclass(frozen=True, slots=True)
class AttemptVerdict:
    """The record after an attempt, and what goes to news.raw before it is written."""

    state: ArticleState
    produce: Produce = None
    outcome: str = ""  # for the log line and the metric: page, fallback, retry, gave_up, failed


def backoff(attempts: int, policy: ArticlePolicy, rand: Random) -> float:
    """Capped exponential, with "equal jitter" (between half and all of the step), so entries that
    failed together do not all retry together, and a retry is never immediate."""
    step = min(policy.backoff_max, policy.backoff_base * 2.0 ** min(max(0, attempts - 1), 30))
    return step * (0.5 + 0.5 * rand())


def on_attempt(
    state: ArticleState, attempt: Attempt, policy: ArticlePolicy, now: float, rand: Random
) -> AttemptVerdict:
    attempts = state.attempts + 1
    if attempt.kind is Kind.PAGE:
        done = state.closed("done", now, attempts=attempts, fetched_at=now, reason=None)
        return AttemptVerdict(done, "page", "page")
    if attempt.kind is Kind.PERMANENT:
        return _give_up(state, attempt.reason, attempts, now, "failed")
    if now - state.first_seen >= policy.give_up_after:
        return _give_up(state, attempt.reason, attempts, now, "gave_up")
    delay = backoff(attempts, policy, rand)
    if attempt.retry_after is not None:
        delay = max(delay, attempt.retry_after)
    retry = replace(state, attempts=attempts, updated_at=now, next_try=now + delay, reason=attempt.reason)
    return AttemptVerdict(retry, None, "retry")


def _give_up(state: ArticleState, reason: str, attempts: int, now: float, outcome: str) -> AttemptVerdict:
    """No page: the feed's text stands.  A revisit of a published page keeps that page."""
    if not state.fallback_due and state.status == "pending":  # a revisit
        return AttemptVerdict(state.closed("done", now, attempts=attempts, reason=reason), None, outcome)
    produce: Produce = "fallback" if state.fallback_due else None
    return AttemptVerdict(state.closed("failed", now, attempts=attempts, reason=reason), produce, outcome)


def at_deadline(state: ArticleState, policy: ArticlePolicy, now: float) -> bool:
    """The feed's text must go out now: the page is not in and the deadline has passed."""
    return state.open and state.fallback_due and now >= state.first_seen + policy.deadline


def after_fallback(state: ArticleState, reason: str, now: float) -> ArticleState:
    """The record once the deadline fallback is acknowledged: still trying the page."""
    return replace(state, status="fallback", fallback_due=False, updated_at=now, reason=reason)


def wake_at(state: ArticleState, policy: ArticlePolicy) -> float:
    """When the work on an open entry needs attention next: its next try, or its deadline."""
    at = state.next_try if state.next_try is not None else state.first_seen
    if state.fallback_due:
        at = min(at, state.first_seen + policy.deadline)
    return at


def expired(state: ArticleState, policy: ArticlePolicy, now: float) -> bool:
    """A closed record older than ``remember``: tombstoned (its entry may be fetched again)."""
    return not state.open and now - state.updated_at >= policy.remember
