"""No page can stall the parser: parse time grows linearly in the size of hostile documents.

Each class of :mod:`tests.unit.hostile_docs` once drove a regular expression into
exponential or polynomial backtracking (a date followed by ", -" groups took minutes in
under 1 KB).  Hypothesis draws the variants (separators, fillers, date languages); for
each we parse the document at ``n`` and ``4n`` characters and require the time to grow far
less than quadratically, and a ~1 MB document of every class to finish well inside the
stage's budget.  Times are the best of a few runs with a floor, so a busy machine does not
fail the test, while a regression (even a quadratic one) still does by a wide margin.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from consumers.parse import ParseError, parse_document
from tests.unit import hostile_docs as hd

SMALL = 24_000
GROWTH = 4
#: A linear parser grows ~4x for 4x input, a quadratic one 16x: 12 leaves room for noise.
MAX_RATIO = 12.0
#: Times below this are noise on a shared machine; they are compared as this much.
FLOOR = 0.005
MEGABYTE = 1_000_000
MAX_SECONDS = 5.0
#: One parse running this long has stalled: it is stopped and counted as infinitely slow.
STALL_SECONDS = 10.0
#: Shrinking re-runs a slow failure many times over; the failing variant is reported as is.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)

dates = st.sampled_from(hd.DATES)
date_seps = st.sampled_from(hd.DATE_SEPARATORS)
run_seps = st.sampled_from(hd.RUN_SEPARATORS)
odd_spaces = st.sampled_from(hd.ODD_SPACES)
timelike = st.sampled_from(hd.TIMELIKE)

#: The keyword arguments hypothesis draws for each class.
VARIANTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "text_stamp_dates": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "text_bylines": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "text_long_date_line": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "text_updated_spaces": {
        "space": odd_spaces,
        "word": st.sampled_from(("Updated", "upd.", "Оновлено", "aktualisiert", "last updated")),
    },
    "text_authors_spaces": {"space": odd_spaces},
    "text_capture_line_spaces": {"space": odd_spaces},
    "text_separator_run": {"sep": run_seps},
    "text_timelike": {"unit": timelike},
    "text_caption_parens": {
        "unit": st.sampled_from(("(a / b) ", "(via ", "((((", "(photo) ", "/ via ", ")")),
    },
    "html_time_dates": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "html_long_time": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "html_byline": {"date": dates, "sep": date_seps},
    "html_updated_separators": {"sep": run_seps, "live": st.booleans()},
    "html_timelike": {"unit": timelike},
    "html_post_ids": {"unit": st.sampled_from(("1", "a1", "-1", "post1", "_", "٣"))},
    "rss_live_entry": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "rss_time_entry": {"date": dates, "sep": date_seps, "clock": st.booleans()},
    "rss_padded_prolog": {"space": st.sampled_from((" ", "\t", "\n", "\r\n"))},
    "rss_author_spaces": {"space": st.sampled_from((" ", "\t", "\n"))},
    "padded_content_type": {"space": st.sampled_from((" ", "\t"))},
}
assert set(VARIANTS) == set(hd.CLASSES), "every hostile class needs its variants"

Builder = Callable[[int], hd.Hostile]


class _Stalled(BaseException):
    """Raised by the alarm out of a stalled parse (a BaseException, so the parser's own
    "anything else is a malformed document" handler lets it through)."""


def _stalled(signum: int, frame: FrameType | None) -> None:
    raise _Stalled


def _parse_seconds(doc: hd.Hostile) -> float:
    """Seconds to parse ``doc``; infinite when it runs past :data:`STALL_SECONDS`.

    Each parse has its own alarm (the regex engine checks for signals), so a regression
    fails in bounded time even when Hypothesis replays the failing example; the test-wide
    alarm pytest-timeout may have set is put back afterwards."""
    raw = doc.raw()
    outer_left, _interval = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.signal(signal.SIGALRM, _stalled)
    started = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, STALL_SECONDS)
    try:
        # Refusing a document is an answer too; only the time matters here.
        with contextlib.suppress(ParseError):
            parse_document(raw)
        return time.perf_counter() - started
    except _Stalled:
        return math.inf
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_left - (time.perf_counter() - started)))


def _best(doc: hd.Hostile, runs: int) -> float:
    best = math.inf
    for _ in range(runs):
        seconds = _parse_seconds(doc)
        if math.isinf(seconds):
            return seconds  # stalled: one stall is enough to know
        best = min(best, seconds)
    return max(FLOOR, best)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """First calls load trafilatura and friends (hundreds of ms): keep that out of timings.
    The warm-up documents are benign, so a regression fails its own test, not this one."""
    for benign in hd.benign_documents():
        _parse_seconds(benign)


def _builder(name: str, data: st.DataObject) -> Builder:
    kwargs = {key: data.draw(strategy, label=key) for key, strategy in VARIANTS[name].items()}
    return partial(hd.CLASSES[name], **kwargs)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(hd.CLASSES))
@settings(max_examples=2, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_time_grows_linearly(name: str, data: st.DataObject) -> None:
    build = _builder(name, data)
    small, large = build(SMALL), build(SMALL * GROWTH)
    small_seconds = _best(small, 2)
    large_seconds = _best(large, 2) if math.isfinite(small_seconds) else math.inf
    assert math.isfinite(large_seconds), f"{name}: a parse ran past {STALL_SECONDS:g} s"
    ratio = large_seconds / small_seconds
    if ratio >= MAX_RATIO:  # a busy moment on a shared machine: measure again, more carefully
        ratio = _best(large, 3) / _best(small, 3)
    assert ratio < MAX_RATIO, f"{name}: {GROWTH}x the input took {ratio:.1f}x the time"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(hd.CLASSES))
@settings(max_examples=1, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_megabyte_documents_finish_in_time(name: str, data: st.DataObject) -> None:
    doc = _builder(name, data)(MEGABYTE)
    seconds = _parse_seconds(doc)
    if MAX_SECONDS <= seconds < math.inf:  # a busy moment on a shared machine: once more
        seconds = _parse_seconds(doc)
    assert seconds < MAX_SECONDS, f"{name}: {len(doc.body)} bytes took {seconds:.1f} s"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("prefix", "groups"), [("", 24), ("By Olena Hrytsenko, ", 85)])
def test_date_then_separator_groups_is_instant(prefix: str, groups: int) -> None:
    """The original report: a stamp line or a byline of a date and ", -" groups (2**groups
    steps before the fix, minutes at 24 groups)."""
    for sep in hd.DATE_SEPARATORS:
        line = prefix + hd.date_phrase(hd.DATES[0], sep, groups)
        # Right under the headline, where stamps and bylines are both read.
        text = f"date 2024-11-04\nHarbour cranes idle\n{line}\n\nThe terminal stayed shut all day.\n"
        doc = hd.Hostile(text.encode(), "text/plain")
        assert _parse_seconds(doc) < 1.0
