"""Every module-level regular expression of the fetch and parse code that reads web input.

Each one is in one of two tables.  ``TIMED``: it can see web text of any length (or of up
to kilobytes), so it runs on its worst known input at ``N`` and ``GROWTH * N`` characters,
best of a few runs, and must grow less than ``MAX_RATIO`` times (a linear pattern grows
~4x, a quadratic one 16x; every super-linear case found so far took seconds at 64 KB).
The inputs are not cut to the callers' caps: a pattern that is linear is linear at any
length.  ``UNTIMED``: the reason it cannot blow up (one character class, a fixed-width
match, text cut to a few hundred characters before it runs).  ``test_every_pattern_is_
classified`` fails on a new pattern in these modules until it is put in one of the two.

Not covered (compiled inside functions, so not listed here): the entity-reference and
``</name`` patterns of :mod:`consumers.parse.safety`, the inline searches of
``live_blocks.is_updated_marker`` (on a stamp's class, the text node before it, or 80
characters of its parent, each read once) and ``headline`` (on text capped at 80-400
characters), ``secrets.mask_url``, and :mod:`ingestor.config` and
:mod:`ingestor.kafka.instance`, which read only the operator's configuration.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from consumers.parse import charset, clean, dispatch, furniture, htmltext, live_blocks, live_split, safety
from consumers.parse import feed as feed_module
from consumers.parse.article import _NOT_BYLINE_ANCESTOR
from consumers.parse.furniture import is_audio_note, is_caption
from consumers.parse.text_capture import _CAPTURE_LINE
from ingestor.fetch import hints, outcome, websub_protocol
from tests.timing import best_cpu_seconds

N = 65_536
GROWTH = 4
#: Linear is ~4x for 4x the input, quadratic 16x: 8 leaves room for a noisy machine.
MAX_RATIO = 8.0
#: Times under this are noise; they are compared as this much.
FLOOR = 0.001
#: One call running this long has stalled: it is stopped and counted as infinitely slow.
STALL_SECONDS = 5.0

MODULES = (
    "ingestor.terminal",
    "ingestor.secrets",
    "ingestor.fetch.opml",
    "ingestor.fetch.websub_protocol",
    "ingestor.fetch.outcome",
    "ingestor.fetch.hints",
    "consumers.parse.article",
    "consumers.parse.charset",
    "consumers.parse.clean",
    "consumers.parse.dates",
    "consumers.parse.dispatch",
    "consumers.parse.feed",
    "consumers.parse.furniture",
    "consumers.parse.headline",
    "consumers.parse.htmltext",
    "consumers.parse.live_blocks",
    "consumers.parse.live_jsonld",
    "consumers.parse.live_split",
    "consumers.parse.safety",
    "consumers.parse.text_capture",
)


def _repeat(unit: str, n: int) -> str:
    return unit * max(1, n // len(unit))


def _brepeat(unit: bytes, n: int) -> bytes:
    return unit * max(1, n // len(unit))


def _prolog_end(text: str) -> int:
    """How :func:`consumers.parse.dispatch.sniff` walks a prolog (without its 4 KB cut)."""
    position = 0
    while (match := dispatch._PROLOG.match(text, position)) is not None and match.end() > position:
        position = match.end()
    return position


#: name -> (what runs the pattern as its caller does, builder of an input of ~n characters)
TIMED: dict[str, tuple[Callable[[Any], object], Callable[[int], Any]]] = {
    # --- fetch stage (the event loop: nothing here may stall) ---------------------------
    "websub_protocol._LINK_VALUE": (
        lambda s: websub_protocol.link_header_rels(s, "https://f.example/"),
        lambda n: "<" * n,
    ),
    "websub_protocol._PARAM": (
        lambda s: websub_protocol.link_header_rels(s, "https://f.example/"),
        lambda n: "<https://f.example/>; " + "a" * n,
    ),
    "websub_protocol._ATTR": (websub_protocol._attributes, lambda n: b"a" + b" " * n + b'="'),
    "websub_protocol._LINK_START": (
        lambda b: websub_protocol.body_link_rels(b, "https://f.example/"),
        lambda n: _brepeat(b"<a:", n),
    ),
    "websub_protocol._LEASE": (
        lambda s: websub_protocol.parse_lease(s, requested=60.0, maximum=600.0),
        lambda n: "1" + " " * n + "x",
    ),
    "outcome._XML_FEED_ROOT": (outcome._XML_FEED_ROOT.search, lambda n: _brepeat(b"<a-", n)),
    "outcome._SPACE": (outcome.starts_as_html, lambda n: _brepeat(b" <!-- -->", n) + b"x"),
    "outcome._HTML_TAG": (
        outcome.starts_as_html,
        lambda n: _brepeat(b"<!---->", n) + b"<!doctype" + b" " * n,
    ),
    "hints._MAX_AGE": (hints.cache_max_age, lambda n: "max-age=" + _repeat("1", n) + " " * n + "x"),
    "hints._NO_CACHE": (hints.cache_max_age, lambda n: ",no-cache" + " " * n + "x"),
    "hints._TTL": (hints._TTL.search, lambda n: b"<ttl>" + b" " * n + b"1" + b" " * n),
    # --- parse stage ------------------------------------------------------------------
    "article._NOT_BYLINE_ANCESTOR": (_NOT_BYLINE_ANCESTOR.search, lambda n: _repeat("commentsx ", n)),
    "charset._CT_CHARSET": (charset.charset_from_content_type, lambda n: _repeat("charset = '", n)),
    "charset._META_CHARSET": (charset._META_CHARSET.search, lambda n: _brepeat(b"<meta charset= '", n)),
    "charset._XML_DECL_TEXT": (
        lambda s: charset._XML_DECL_TEXT.sub("", s, count=1),
        lambda n: "<?xml" + _repeat(" x", n) + " " * n,
    ),
    "clean._ENTITY": (clean.decode_entities, lambda n: "&" + _repeat("#0000000000038;", n) + "x"),
    "clean._BLANK_LINE_RUN": (
        lambda s: clean.clean_text(s, multiline=True),
        lambda n: _repeat("\n" + " " * 60 + "x", n),
    ),
    "dispatch._PROLOG": (_prolog_end, lambda n: "<!DOCTYPE x [" + _repeat("] ", n)),
    "feed._TAG_LIKE": (feed_module._TAG_LIKE.search, lambda n: "<a" + "a" * n),
    "furniture._PHOTO_PREFIX": (is_caption, lambda n: " " * n + "photographs"),
    "furniture._AUDIO_NOTE": (is_audio_note, lambda n: "listen to this article" + _repeat(" x", n) + "\nx"),
    # Run on at most 135 characters of a line's closing parenthesis; its cost per character
    # is what matters (see test_linear_time.test_caption_credits_cost_what_plain_lines_cost).
    "furniture._CREDIT_WORD": (furniture._CREDIT_WORD.search, lambda n: _repeat("apx", n)),
    "htmltext._TOKEN_FOUND": (htmltext._TOKEN_FOUND.search, lambda n: _repeat(" sharex", n)),
    "htmltext._BLANK_LINES": (htmltext.normalize_text, lambda n: _repeat("\n \t" * 8 + "x", n)),
    "live_blocks._BY_PREFIX": (lambda s: live_blocks._BY_PREFIX.sub("", s), lambda n: "by" + " " * n + "x"),
    "live_split._CLOCKISH": (lambda s: live_split._clock_count(s, 3), lambda n: "1&#" + "0" * n),
    "safety._ENTITY_OPEN": (safety._ENTITY_OPEN.findall, lambda n: b"<!" + b" " * n),
    "safety._TAG": (safety.html_nesting_depth, lambda n: "<a " + _repeat("b='", n)),
    "safety._FONT_BREAKOUT": (
        safety.html_nesting_depth,
        lambda n: "<svg><font " + _repeat(" colors", n) + ">",
    ),
    "safety._HTML_ANNOTATION": (
        safety.html_nesting_depth,
        lambda n: "<math><annotation-xml " + _repeat("encoding =  ", n) + ">",
    ),
    "safety._SCRIPT_STATES": (safety.html_nesting_depth, lambda n: "<script>" + _repeat("<!--<script>", n)),
    "safety._COMMENT_END": (safety.html_nesting_depth, lambda n: "<!--" + _repeat("--!", n)),
    "safety._UNIT_RUN": (safety._collapse_runs, lambda n: _repeat("<a>x</a><a>y</a>", n) + "<a" + " " * n),
    "safety._JSON_STRING": (safety.json_depth_exceeds, lambda n: "[" * 70 + '"' + _repeat('\\"', n)),
    "text_capture._CAPTURE_LINE": (_CAPTURE_LINE.match, lambda n: "date: 2024-11-04 " + "\x0c" * n + "\n"),
}

#: name -> why it needs no timing.
UNTIMED: dict[str, str] = {
    "terminal._UNSAFE": "one character class",
    "terminal._LINES": "one character class",
    "terminal._UNSAFE_IN_JSON": "one character class",
    "secrets._SENSITIVE_NAME": "header names from the configuration; literal alternation",
    "opml._NOT_ID": "one character class",
    "websub_protocol._TOKEN": "fixed width (32 hex digits), anchored",
    "charset._XML_DECL": "matched at offset 0 of the first 512 bytes; bounded {0,200}",
    "clean._REMOVED": "one character class",
    "clean._ASTRAL_NONCHARACTER": "one character class",
    "clean._HIGH_ASTRAL": "one character class",
    "clean._BODY_ODD_CHAR": "one character class",
    "clean._PLAIN_URL": "at most MAX_URL_LENGTH (4,096) characters; host, port, path: disjoint classes",
    "clean._LANGUAGE_TAG": "at most 35 characters",
    "clean._URL_INNER_WHITESPACE": "one character class",
    "clean._URL_CONTROL": "one character class",
    "dates.CLOCK_RE": "text cut to MAX_DATE_TEXT (320) or less; possessive spaces",
    "dates._DAY_MONTH_YEAR": "text cut to MAX_DATE_TEXT (320)",
    "dates._MONTH_DAY_YEAR": "text cut to MAX_DATE_TEXT (320)",
    "dates._NUMERIC_DATE": "text cut to MAX_DATE_TEXT (320); fixed-width groups",
    "dates._TIME_AFTER": "text cut to MAX_DATE_TEXT (320); possessive",
    "dates._TIME_BEFORE": "text cut to MAX_DATE_TEXT (320); possessive",
    "dispatch._ROOT": "matched at one offset of the first 4 KB",
    "dispatch._DOCTYPE_HTML": "the first 4 KB; a literal head",
    "dispatch._JSON_START": "matched at offset 0; one run of spaces",
    "dispatch._FEED_MARKERS": "the first 4 KB; literals",
    "dispatch._HTML_MARKERS": "the first 4 KB; literals",
    "feed._SPACES": "one character class",
    "feed._HTML_ROOT": "the first 4 KB; a literal head",
    "feed._ISO_START": "matched at offset 0; fixed width",
    "feed._RFC822_UTC_UNKNOWN": "date strings over 200 characters are not read",
    "feed._EMAIL_THEN_NAME": "text cut to 300 characters, spaces collapsed",
    "feed._NAME_THEN_EMAIL": "text cut to 300 characters, spaces collapsed",
    "feed._JSON_START": "the first 256 bytes, at offset 0",
    "furniture._BY_PREFIX": "bylines of at most 300 characters (120 in live blocks); anchored, possessive",
    "furniture._AUTHORS_HEAD": "lines of at most 300 characters; anchored, possessive",
    "furniture._NAME_SPLIT": "name lists of at most 300 characters",
    "furniture._READ_TIME": "bylines of at most 300 characters; possessive",
    "furniture._BOILERPLATE": "lines of at most 240 characters",
    "furniture._UK_MARK": "one character class",
    "furniture._RU_MARK": "one character class",
    "furniture._CYRILLIC": "one character class",
    "furniture._LATIN": "one character class",
    "furniture._WORD": "one character class",
    "headline._SEPARATOR": "titles cut to 400 characters, spaces collapsed",
    "headline._LEAD": "bylines cut to 300 characters",
    "headline._TAIL": "bylines cut to 300 characters",
    "headline._HANDLE": "bylines cut to 300 characters, spaces collapsed",
    "headline._NAME_SPLIT": "bylines cut to 300 characters",
    "headline._SENTENCE_STOP": "bylines cut to 300 characters",
    "htmltext._BOILERPLATE_PARAGRAPH": "paragraphs of at most 500 characters",
    "htmltext._SPACE_RUN": "one character class per branch",
    "htmltext._ANY_SPACE_RUN": "one character class per branch",
    "htmltext._INVISIBLE": "one character class",
    "live_blocks._UPDATED_TEXT": "text cut to 400 characters",
    "live_blocks._UPDATED_LINE": "lines under 80 characters",
    "live_blocks._HAS_WORD": "lines under 40 characters",
    "live_blocks._CLOCK_LINE": "lines of at most 40 characters",
    "live_blocks._ID_CHARS": "one character class",
    "live_blocks._POST_PREFIX": "matched at offset 0; literals",
    "live_blocks._DIGIT": "one character class",
    "safety._HARMLESS_REF": "entity values of at most 4 KB; literals and one digit run per '&'",
    "safety._PREDEFINED_REDECLARED": "matched at each '<!ENTITY'; bounded {0,16} values",
    "safety._FIRST_LETTER_TAG": "two characters",
    "safety._NOT_BRACKETS": "one character class",
    "text_capture._SPACES": "one character class",
    "text_capture._UPDATED_PART": "text of at most 120 characters",
    "text_capture._STAMP_CLOCK": "lines of at most 90 characters",
}


def _patterns() -> dict[int, set[str]]:
    """Each pattern object (by identity) -> every ``module._NAME`` it is bound to."""
    found: dict[int, set[str]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        short = module_name.rsplit(".", 1)[1]
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found.setdefault(id(value), set()).add(f"{short}.{name}")
    return found


def test_every_pattern_is_classified() -> None:
    listed = set(TIMED) | set(UNTIMED)
    unlisted = sorted(min(names) for names in _patterns().values() if not names & listed)
    assert not unlisted, f"classify these web-facing patterns in TIMED or UNTIMED: {unlisted}"
    known = set().union(*_patterns().values())
    stale = sorted(name for name in listed if name not in known)
    assert not stale, f"listed but gone: {stale}"


def _best(run: Callable[[Any], object], arg: Any, runs: int) -> float:
    """CPU seconds of ``run(arg)``, the best of ``runs`` (see :mod:`tests.timing`)."""
    return best_cpu_seconds(lambda: run(arg), runs, floor=FLOOR, stall_seconds=STALL_SECONDS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(TIMED))
def test_pattern_time_grows_linearly(name: str) -> None:
    run, build = TIMED[name]
    small, large = build(N), build(N * GROWTH)
    small_seconds = _best(run, small, 3)
    assert math.isfinite(small_seconds), f"{name}: {len(small)} characters ran past {STALL_SECONDS:g} s"
    large_seconds = _best(run, large, 3)
    assert math.isfinite(large_seconds), f"{name}: {len(large)} characters ran past {STALL_SECONDS:g} s"
    ratio = large_seconds / small_seconds
    if ratio >= MAX_RATIO:  # a busy moment on a shared machine: measure again, more carefully
        ratio = _best(run, large, 5) / _best(run, small, 5)
    assert ratio < MAX_RATIO, f"{name}: {GROWTH}x the input took {ratio:.1f}x the time"
