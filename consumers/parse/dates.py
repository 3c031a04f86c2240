"""Reading the dates and clock times that pages print for humans.

Machine-readable dates (ISO 8601, RFC 822) go through dateutil.  Human bylines need month
names in the languages we carry (English, Ukrainian, Russian, German, Spanish, French;
Ukrainian and Russian in the genitive that a date uses: "4 листопада 2024", "4 ноября
2024").  A month table is a few lines and costs nothing at parse time, where a general
multilingual date library would cost tens of milliseconds per call on a 500-post page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Final

from dateutil import parser as du_parser

__all__ = [
    "CLOCK_RE",
    "MAX_DATE_TEXT",
    "HumanDate",
    "clock_pattern",
    "find_human_date",
    "parse_clock",
    "parse_machine_datetime",
]

_MONTHS: Final[dict[int, tuple[str, ...]]] = {
    1: ("january", "jan", "січня", "січень", "января", "январь", "янв", "januar", "jän", "enero", "janvier"),
    2: ("february", "feb", "лютого", "лютий", "февраля", "февраль", "фев", "februar", "febrero", "février"),
    3: ("march", "mar", "березня", "березень", "марта", "март", "märz", "marz", "marzo", "mars"),
    4: ("april", "apr", "квітня", "квітень", "апреля", "апрель", "апр", "abril", "avril"),
    5: ("may", "травня", "травень", "мая", "май", "mai", "mayo"),
    6: ("june", "jun", "червня", "червень", "июня", "июнь", "juni", "junio", "juin"),
    7: ("july", "jul", "липня", "липень", "июля", "июль", "juli", "julio", "juillet"),
    8: ("august", "aug", "серпня", "серпень", "августа", "август", "авг", "agosto", "août"),
    9: (
        "september",
        "sept",
        "sep",
        "вересня",
        "вересень",
        "сентября",
        "сентябрь",
        "сен",
        "septiembre",
        "septembre",
    ),
    10: (
        "october",
        "oct",
        "жовтня",
        "жовтень",
        "октября",
        "октябрь",
        "окт",
        "oktober",
        "okt",
        "octubre",
        "octobre",
    ),
    11: ("november", "nov", "листопада", "листопад", "ноября", "ноябрь", "ноя", "noviembre", "novembre"),
    12: (
        "december",
        "dec",
        "грудня",
        "грудень",
        "декабря",
        "декабрь",
        "дек",
        "dezember",
        "dez",
        "diciembre",
        "décembre",
    ),
}
MONTH_BY_NAME: Final[dict[str, int]] = {name: num for num, names in _MONTHS.items() for name in names}


def _month_alternation() -> str:
    """The month names as one alternation, longest first, grouped by first letter.

    A search tries the month at every position of the text; a flat alternation of ~100
    case-insensitive names costs ~5 µs a position (Python's regex engine has no fast path
    for it), which made a 300-character byline cost 1.5 ms.  A class check on the first
    letter, then one branch per first letter, gives the same matches in the same order
    (names that share a first letter keep their longest-first order) at a tenth the cost.
    """
    ordered = sorted(MONTH_BY_NAME, key=len, reverse=True)
    by_first: dict[str, list[str]] = {}
    for name in ordered:
        by_first.setdefault(name[0], []).append(re.escape(name[1:]))
    branches = "|".join(f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items())
    return f"(?=[{''.join(re.escape(first) for first in by_first)}])(?:{branches})"


_MONTH_ALT: Final = _month_alternation()


def clock_pattern(prefix: str = "") -> str:
    """Regex source for a clock reading ("8:36 AM", "8:36 a.m.", "08:36", "20.15 Uhr",
    "13:10:05"); group names carry ``prefix`` so two clocks fit in one pattern.

    The spaces before AM/PM and "Uhr" are possessive (``\\s*+``): neither suffix starts
    with a space, so giving spaces back can never make it match, and a pattern that puts
    its own ``\\s*`` after a clock must not retry every split of a long run of spaces.
    """
    return (
        rf"(?P<{prefix}h>[01]?\d|2[0-3])[:.](?P<{prefix}m>[0-5]\d)(?::(?P<{prefix}s>[0-5]\d))?"
        rf"(?:\s*+(?P<{prefix}ampm>[AaPp]\.?\s?[Mm]\.?)(?![A-Za-z]))?(?:\s*+(?:Uhr|h)\b)?"
    )


_CLOCK: Final = clock_pattern()
CLOCK_RE: Final = re.compile(_CLOCK)

#: Longest text searched for a printed date.  A date line, byline or ``<time>`` text is
#: short; cutting longer text before any pattern runs bounds the work per call whatever the
#: page holds (callers already pass at most 300 characters).
MAX_DATE_TEXT: Final = 320

# Every quantifier below reads one kind of character, and the ones next to each other
# read disjoint kinds (spaces, then a month name, then digits): there is one way to match
# any text, so a failed match is given up after one pass instead of retrying every split.
_DAY_MONTH_YEAR: Final = re.compile(
    rf"(?P<d>\d{{1,2}})\.?\s++(?:de\s++)?(?P<mon>{_MONTH_ALT})\.?,?\s++(?:de\s++)?(?P<y>\d{{4}})"
    r"(?:\s*+(?:р\.|г\.|року|года))?",
    re.IGNORECASE,
)
_MONTH_DAY_YEAR: Final = re.compile(
    rf"(?P<mon>{_MONTH_ALT})\.?\s++(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s++(?P<y>\d{{4}})",
    re.IGNORECASE,
)
_NUMERIC_DATE: Final = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})|(?P<d2>\d{1,2})\.(?P<mo2>\d{1,2})\.(?P<y2>\d{4})"
)
#: Separators between a date and the clock after it.  A dash counts only after a comma or
#: a space (", -", " - "); the lookbehind says so without a second alternative (the old
#: ``,|\s|,\s*-|\s-`` read ", -" in two ways, and a run of them in 2**n ways when no
#: clock followed).  No separator holds a digit, so the run is possessive.
_TIME_AFTER: Final = re.compile(rf"^(?:[,\s|·—]|at|um|a\s++las|à|о|в|(?<=[,\s])-)*+{_CLOCK}", re.IGNORECASE)
#: A clock and the separators between it and the date that follows it.
_TIME_BEFORE: Final = re.compile(rf"{_CLOCK}(?:[,\s·|—-]|on)*+$", re.IGNORECASE)


def parse_clock(match: re.Match[str], prefix: str = "") -> time | None:
    """A ``time`` from a :func:`clock_pattern` match (12-hour when AM/PM is present)."""
    hour = int(match.group(f"{prefix}h"))
    minute = int(match.group(f"{prefix}m"))
    second = int(match.group(f"{prefix}s") or 0)
    ampm = match.group(f"{prefix}ampm")
    if ampm:
        if not 1 <= hour <= 12:
            return None
        is_pm = ampm.lower().startswith("p")
        hour = hour % 12 + (12 if is_pm else 0)
    return time(hour, minute, second)


@dataclass(frozen=True, slots=True)
class HumanDate:
    """A date found in running text, the clock time next to it if any, and where it was."""

    day: date
    clock: time | None
    start: int
    end: int

    def to_datetime(self, zone: tzinfo) -> datetime:
        """The moment in ``zone`` (midnight when no clock was printed), as UTC."""
        local = datetime.combine(self.day, self.clock or time(0, 0)).replace(tzinfo=zone)
        return local.astimezone(UTC)


def _date_match(text: str) -> tuple[date, int, int] | None:
    best: tuple[date, int, int] | None = None
    for pattern in (_MONTH_DAY_YEAR, _DAY_MONTH_YEAR, _NUMERIC_DATE):
        m = pattern.search(text)
        if m is None:
            continue
        groups = m.groupdict()
        try:
            if "mon" in groups:
                month = MONTH_BY_NAME[groups["mon"].lower()]
                found = date(int(groups["y"]), month, int(groups["d"]))
            elif groups.get("y"):
                found = date(int(groups["y"]), int(groups["mo"]), int(groups["d"]))
            else:
                found = date(int(groups["y2"]), int(groups["mo2"]), int(groups["d2"]))
        except (ValueError, KeyError):
            continue
        if best is None or m.start() < best[1]:
            best = (found, m.start(), m.end())
    return best


def find_human_date(text: str) -> HumanDate | None:
    """The first printed date in ``text`` ("November 4, 2024 8:36 AM", "4 листопада 2024,
    08:36", "12:05, 3. März 2025"), with an adjacent clock time when there is one.

    Only the first :data:`MAX_DATE_TEXT` characters are read (see there)."""
    text = text[:MAX_DATE_TEXT]
    found = _date_match(text)
    if found is None:
        return None
    day, start, end = found
    clock: time | None = None
    after = _TIME_AFTER.match(text[end:])
    if after is not None:
        clock = parse_clock(after)
        end += after.end()
    else:
        before = _TIME_BEFORE.search(text, 0, start)
        if before is not None:
            clock = parse_clock(before)
            start = before.start()
    return HumanDate(day, clock, start, end)


def parse_machine_datetime(value: str | None, zone: tzinfo) -> datetime | None:
    """An ISO 8601 / RFC 822 string as a UTC datetime.

    An explicit offset in the string wins; a string without one is read in ``zone`` (the
    publisher's zone from the feed settings).  ``None`` when it is not a date.
    """
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = du_parser.parse(value)
        except (ValueError, OverflowError, TypeError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
