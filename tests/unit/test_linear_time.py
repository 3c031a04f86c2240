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
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
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
    "padded_content_type": {"space": st.sampled_from((" ", "\t"))},
}
assert set(VARIANTS) == set(hd.CLASSES), "every hostile class needs its variants"

Builder = Callable[[int], hd.Hostile]


def _parse_seconds(doc: hd.Hostile) -> float:
    raw = doc.raw()
    started = time.perf_counter()
    # Refusing a document is an answer too; only the time matters here.
    with contextlib.suppress(ParseError):
        parse_document(raw)
    return time.perf_counter() - started


def _best(doc: hd.Hostile, runs: int) -> float:
    return max(FLOOR, min(_parse_seconds(doc) for _ in range(runs)))


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """First calls load trafilatura and friends (hundreds of ms): keep that out of timings."""
    for name in ("html_byline", "rss_live_entry", "text_bylines"):
        _parse_seconds(hd.CLASSES[name](2_000))


def _builder(name: str, data: st.DataObject) -> Builder:
    kwargs = {key: data.draw(strategy, label=key) for key, strategy in VARIANTS[name].items()}
    return partial(hd.CLASSES[name], **kwargs)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(hd.CLASSES))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_time_grows_linearly(name: str, data: st.DataObject) -> None:
    build = _builder(name, data)
    small, large = build(SMALL), build(SMALL * GROWTH)
    ratio = _best(large, 2) / _best(small, 2)
    if ratio >= MAX_RATIO:  # a busy moment on a shared machine: measure again, more carefully
        ratio = _best(large, 3) / _best(small, 3)
    assert ratio < MAX_RATIO, f"{name}: {GROWTH}x the input took {ratio:.1f}x the time"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(hd.CLASSES))
@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_megabyte_documents_finish_in_time(name: str, data: st.DataObject) -> None:
    doc = _builder(name, data)(MEGABYTE)
    seconds = _parse_seconds(doc)
    if seconds >= MAX_SECONDS:
        seconds = _parse_seconds(doc)
    assert seconds < MAX_SECONDS, f"{name}: {len(doc.body)} bytes took {seconds:.1f} s"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("prefix", "groups"), [("", 24), ("By Olena Hrytsenko, ", 85)])
def test_date_then_separator_groups_is_instant(prefix: str, groups: int) -> None:
    """The original report: a stamp line or a byline of a date and ", -" groups (2**groups
    steps before the fix, minutes at 24 groups)."""
    for sep in hd.DATE_SEPARATORS:
        line = prefix + hd.date_phrase(hd.DATES[0], sep, groups)
        doc = hd.Hostile((hd.CAPTURE_HEAD + line + "\n").encode(), "text/plain")
        assert _parse_seconds(doc) < 1.0
