"""Recognising page furniture in plain text: bylines, captions, audio notes, author lines,
share/subscribe lines; plus the cheap language guess every item carries.

Shared by the text-capture and HTML shapes so that "what counts as boilerplate" is decided
once.  Everything here is a line-level test: the callers have already split text into
lines or paragraphs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from consumers.parse.dates import find_human_date

__all__ = [
    "Byline",
    "detect_language",
    "has_byline_prefix",
    "is_audio_note",
    "is_boilerplate_line",
    "is_caption",
    "normalize_headline",
    "parse_authors_line",
    "parse_byline",
    "split_names",
]

# No two quantifiers next to each other here read the same characters, so there is one way
# to match any text: ``\s*[:-]?\s+`` became "an optional dash with its spaces, then spaces".
_BY_PREFIX: Final = re.compile(
    r"^\s*+(?:by|von|por|par|від|автор(?:и|ы|ка)?|текст)(?:\s*+[:\-–])?\s+",
    re.IGNORECASE,
)
#: The head of an "Authors: A, B" line; the names are the rest of the line, stripped
#: (a ``(?P<names>.+?)\s*$`` tail retried the spaces after every character: n**2).
_AUTHORS_HEAD: Final = re.compile(
    r"^\s*+(?:authors?|автор[иы]?|autor(?:en|es)?|auteurs?)\s*+:",
    re.IGNORECASE,
)
#: An author line or a list of names is short; longer lines are not read as either.
_MAX_NAMES_LINE: Final = 300
#: A name separator and the spaces around it.  Spaces before it are read only from where
#: their run starts (the lookbehind); otherwise the search retried the leading ``\s*`` at
#: every space of a long run (n**2).  The second branch is a bare comma or semicolon right
#: after an earlier separator's spaces.  Either way the leftmost match is the one the plain
#: ``\s*(?:,|;|\s&\s|…)\s*`` found.
_NAME_SPLIT: Final = re.compile(
    r"(?:(?<!\s)\s*(?:,|;|\s&\s|\sand\s|\sі\s|\sта\s|\sи\s|\sund\s|\sy\s|\set\s)|[,;])\s*"
)
_READ_TIME: Final = re.compile(
    r"\b\d++\s*+(?:min(?:ute)?s?|хв(?:илин[аи]?)?|мин(?:ут[аы]?)?|minutos?)\.?\s*+"
    r"(?:read|читання|чтения|de\s++lectura|lesezeit|lecture)?\s*+$",
    re.IGNORECASE,
)
#: A credit closes its line within this many characters ("(" + 120 + keyword + 120 + ")").
_CREDIT_TAIL: Final = 300
_CREDIT: Final = re.compile(
    r"\((?:[^()]{0,120}?(?:/|\bvia\b|\bphoto\b|\bфото\b|\bfoto\b|getty|reuters|\bafp\b|\bap\b|\bepa\b"
    r"|anadolu|shutterstock|ukrinform|укрінформ|credit)[^()]{0,120})\)\s*$",
    re.IGNORECASE,
)
_PHOTO_PREFIX: Final = re.compile(r"^\s*(?:photo|фото|foto|image|illustration)\s*[:/]", re.IGNORECASE)
_AUDIO_NOTE: Final = re.compile(
    r"^\s*(?:(?:this|the)\s+audio\s+(?:is|was)\s+(?:created|generated|produced)\b.*"
    r"|listen\s+to\s+(?:this|the)\s+(?:article|story)\b.*"
    r"|(?:це|цей)\s+аудіо\b.*|аудіо\s+створено\b.*|(?:это|данное)\s+аудио\b.*|слухати\s+статтю.*"
    r"|прослушать\s+статью.*|artikel\s+anhören.*|escuchar\s+(?:este\s+)?art[ií]culo.*)$",
    re.IGNORECASE,
)
_BOILERPLATE: Final = re.compile(
    r"""^\s*(?:
        skip\s+to\s+(?:main\s+)?content | advertisement | advertising | реклама | anzeige | publicidad
      | (?:sponsored|paid)\s+content | share(?:\s+this(?:\s+\w+)?|\s+on\s+\w+)? | tweet | email | copy\s+link
      | поділитися | поделиться | teilen | compartir
      | subscribe(?:\s+(?:now|here|to\s+\w+(?:\s+\w+){0,4}))?
      | (?:sign\s+up|subscribe)\b.{0,60}newsletter.{0,40}
      | підписатися.{0,60} | подписаться.{0,60} | jetzt\s+abonnieren | suscr[ií]bete.{0,60}
      | most\s+read | популярне | самое\s+читаемое | meistgelesen | lo\s+más\s+leído
      | related(?:\s+(?:stories|articles|news))? | read\s+(?:also|more)(?::.{0,200})?
      | see\s+also(?::.{0,200})?
      | читайте\s+також(?::.{0,200})? | читайте\s+также(?::.{0,200})? | lesen\s+sie\s+auch(?::.{0,200})?
      | lee\s+también(?::.{0,200})? | continue\s+reading.{0,80} | show\s+more | load\s+more(?:\s+\w+)?
      | (?:latest|live)\s+(?:news|updates) | news\s+feed | стрічка\s+новин | лента\s+новостей
      | support\s+(?:independent\s+)?journalism.{0,80} | become\s+a\s+member.{0,80}
      | key\s+events | pinned(?:\s+post)? | закріплено | закреплено
    )""",
    re.IGNORECASE | re.VERBOSE,
)
#: What may close a furniture line after its words ("Share!", "Read also: …").
_BOILERPLATE_END: Final = ".!:…"
#: Furniture lines are short; longer lines are never matched.
_MAX_BOILERPLATE_LINE: Final = 240

_UK_MARK: Final = re.compile("[іїєґІЇЄҐ]")
_RU_MARK: Final = re.compile("[ыэъёЫЭЪЁ]")
_CYRILLIC: Final = re.compile("[\u0400-\u04ff]")
_LATIN: Final = re.compile("[A-Za-z]")
_CYRILLIC_LANGS: Final = frozenset({"uk", "ru", "be", "bg", "sr", "mk", "kk"})
_STOPWORDS: Final[dict[str, frozenset[str]]] = {
    "en": frozenset(
        (
            "the",
            "and",
            "of",
            "to",
            "in",
            "is",
            "that",
            "for",
            "was",
            "with",
            "on",
        )
    ),
    "de": frozenset(
        (
            "der",
            "die",
            "und",
            "das",
            "ist",
            "nicht",
            "mit",
            "den",
            "von",
            "zu",
            "im",
            "auf",
            "ein",
            "eine",
        )
    ),
    "es": frozenset(
        (
            "el",
            "la",
            "los",
            "las",
            "y",
            "de",
            "que",
            "en",
            "un",
            "una",
            "por",
            "con",
            "para",
            "es",
        )
    ),
    "fr": frozenset(
        (
            "le",
            "la",
            "les",
            "et",
            "des",
            "du",
            "une",
            "est",
            "dans",
            "pour",
            "que",
            "sur",
            "au",
        )
    ),
}
_WORD: Final = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True, slots=True)
class Byline:
    """What a byline told us: who wrote it and when (UTC), if it said."""

    authors: list[str]
    published_at: datetime | None


def split_names(text: str) -> list[str]:
    """ "A, B and C" as ["A", "B", "C"], in any of the conjunctions we carry."""
    names = [n.strip(" .·|–—-") for n in _NAME_SPLIT.split(text)]
    return [n for n in names if n and len(n) <= 80]


def parse_byline(line: str, zone: tzinfo) -> Byline | None:
    """A byline ("by A and B November 4, 2024 8:36 AM 2 min read", "Автори: А та Б, 4 листопада
    2024, 08:36") or ``None`` when the line is not one.  Times print in the publisher's zone."""
    if len(line) > 300:
        return None
    prefix = _BY_PREFIX.match(line)
    when = find_human_date(line)
    if prefix is None and (when is None or len(line) > 120):
        return None
    if prefix is None and when is not None:
        # A date line with nothing else of substance ("November 4, 2024 8:36 AM").
        rest = (line[: when.start] + line[when.end :]).strip(" ,·|–—-")
        if _READ_TIME.sub("", rest).strip(" ,·|–—-"):
            return None
    start = prefix.end() if prefix else 0
    names_text = line[start : when.start] if when is not None and when.start >= start else line[start:]
    names_text = _READ_TIME.sub("", names_text).strip(" ,·|–—-")
    if prefix is not None and when is None and len(names_text) > 120:
        return None
    authors = split_names(names_text) if names_text else []
    return Byline(authors, when.to_datetime(zone) if when is not None else None)


def has_byline_prefix(line: str) -> bool:
    """Whether ``line`` opens like a byline ("By", "Автор:", "Автори:", "Von", ...)."""
    return _BY_PREFIX.match(line) is not None


def parse_authors_line(line: str) -> list[str] | None:
    """The names of an "Authors: A, B" line, or ``None`` when it is not one (the names must
    be on the head's line; spaces and line breaks around them do not count)."""
    if len(line) > _MAX_NAMES_LINE:
        return None
    m = _AUTHORS_HEAD.match(line)
    if m is None:
        return None
    rest = line[m.end() :]
    names = rest.strip()
    if not names:
        # Only spaces after the colon: still an author line when one of them is not a line
        # break (as the old ``:\s*(.+?)\s*$`` read it), with no names.
        return [] if rest.replace("\n", "") else None
    if "\n" in names:
        return None
    return split_names(names)


def is_caption(line: str) -> bool:
    """A photo caption: ends with a parenthesised credit ("(Name/Agency via Getty Images)") or
    starts with "Photo:"."""
    # A credit must close the line: the endswith test spares paragraphs the regex search,
    # and only the line's tail can hold it, so a paragraph of brackets costs no more.
    tail = line.rstrip()
    return bool((tail.endswith(")") and _CREDIT.search(tail[-_CREDIT_TAIL:])) or _PHOTO_PREFIX.match(line))


def is_audio_note(line: str) -> bool:
    return bool(_AUDIO_NOTE.match(line))


def is_boilerplate_line(line: str) -> bool:
    """Share, subscribe, "Most read", "Read also: …", skip links and similar furniture.

    The closing spaces and punctuation are cut by hand before the words are matched whole:
    as a ``\\s*[.!:…]*\\s*$`` tail after "Read also: .{0,200}" they were retried at every
    length of the ``.{0,200}`` (a line ending in 200 form feeds took 65 ms).  No furniture
    phrase must end in a space or one of those marks, so the lines matched are the same.
    """
    if len(line) > _MAX_BOILERPLATE_LINE:
        return False
    end = len(line.rstrip())
    while end and line[end - 1] in _BOILERPLATE_END:
        end -= 1
    return _BOILERPLATE.fullmatch(line[:end].rstrip()) is not None


def normalize_headline(text: str) -> str:
    """Headline key for ids: case, punctuation and spacing do not make a new item."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(text))


def detect_language(text: str, default: str | None) -> str:
    """Cheap script-and-stopword guess: Cyrillic with і/ї/є/ґ is Ukrainian, with ы/э/ъ/ё
    Russian, with neither the ``default`` when it is a Cyrillic language (a short Ukrainian
    update need not contain an і), else Russian; Latin text uses ``default`` (the feed's or
    page's language), else a stopword vote, else English."""
    sample = text[:1000]
    if _CYRILLIC.search(sample) is not None and len(_CYRILLIC.findall(sample)) >= len(_LATIN.findall(sample)):
        if _UK_MARK.search(sample) is not None:
            return "uk"
        if _RU_MARK.search(sample) is not None or default not in _CYRILLIC_LANGS:
            return "ru"
        return default or "ru"  # short text with neither marker: the page's language decides
    if default and default not in _CYRILLIC_LANGS:
        return default
    words = [w.lower() for w in _WORD.findall(sample[:600])]
    best, best_score = "en", 0
    for lang, stop in _STOPWORDS.items():
        score = sum(1 for w in words if w in stop)
        if score > best_score:
            best, best_score = lang, score
    return best
