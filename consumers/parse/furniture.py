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
#: The words that make a parenthesis at the end of a line a photo credit ("(Name/Agency via
#: Getty Images)"), matched in any case, and whether they must stand as words.  No word is a
#: prefix of another, so at most one matches at any position.
_CREDIT_WORDS: Final = (
    ("/", False),
    ("via", True),
    ("photo", True),
    ("фото", True),
    ("foto", True),
    ("getty", False),
    ("reuters", False),
    ("afp", True),
    ("ap", True),
    ("epa", True),
    ("anadolu", False),
    ("shutterstock", False),
    ("ukrinform", False),
    ("укрінформ", False),
    ("credit", False),
)


def _credit_word_pattern() -> str:
    """The credit words, for text folded by :func:`_fold_credit`, grouped by first letter.

    Each branch opens with a plain letter (``\\b`` before a letter is "no word character
    before it", checked right after it), so the search skips to the words' first letters
    and tries only the words of the letter it finds: ~50 ns a character of "aaaa…" (the
    worst text), ~5 ns of text without those letters, where the ``re.IGNORECASE``
    alternation cost 130-400 ns a character of any text."""
    groups: dict[str, list[tuple[str, bool]]] = {}
    for word, whole in _CREDIT_WORDS:
        groups.setdefault(word[0], []).append((re.escape(word[1:]), whole))
    branches = []
    for first, rests in groups.items():
        bounded = [rest for rest, whole in rests if whole]
        ends = [rf"(?<!\w.)(?:{'|'.join(bounded)})\b"] if bounded else []
        ends += [rest for rest, whole in rests if not whole and rest]
        branches.append(re.escape(first) + (f"(?:{'|'.join(ends)})" if ends else ""))
    return "|".join(branches)


_CREDIT_WORD: Final = re.compile(_credit_word_pattern())
_CREDIT_WORD_MAX: Final = max(len(word) for word, _whole in _CREDIT_WORDS)
#: A credit word has at most this many characters of the parenthesis before it, and as many
#: after it.
_CREDIT_SIDE: Final = 120
#: Every character ``re.IGNORECASE`` takes for a letter of a credit word, as that letter:
#: its upper and lower case, and the few others Python's ``re`` adds (dotted and dotless
#: I, the long s, the Kelvin sign, old Cyrillic letter forms).
_CREDIT_CASE_EXTRA: Final = {"i": "İı", "k": "\u212a", "s": "ſ", "о": "ᲂ", "т": "ᲄᲅ"}
_CREDIT_FOLD: Final = {
    ord(variant): letter
    for letter in sorted({ch for word, _whole in _CREDIT_WORDS for ch in word if ch.isalpha()})
    for variant in {letter.upper(), letter.lower(), *_CREDIT_CASE_EXTRA.get(letter, "")}
}
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
    return _ends_with_credit(line.rstrip()) or _PHOTO_PREFIX.match(line) is not None


def _fold_credit(text: str) -> str:
    """``text`` with every character ``re.IGNORECASE`` would match to a letter of a credit
    word replaced by that letter; one character for one, so positions stay."""
    return text.lower() if text.isascii() else text.translate(_CREDIT_FOLD)


def _ends_with_credit(tail: str) -> bool:
    """Whether ``tail`` ends with ``(…)`` holding a credit word with at most
    :data:`_CREDIT_SIDE` characters of the parenthesis on either side of it (and no
    parentheses inside).

    This is what ``\\((?:[^()]{0,120}?(?:WORDS)[^()]{0,120})\\)\\s*$`` (case-insensitive)
    matched, read without that pattern: it tried every one of the 120 places for the word
    and, at each word found, every length of the run after it, so a line ending in "(" and
    298 "/" and ")" cost 14,000 steps (160 µs; 8 s for a 15 MB capture of such lines).
    Here two ``str`` searches find the only parenthesis it can be, and one search of the
    stretch a word can be in (at most 135 characters) finds a word; when that word ends too
    early, the next one is looked for (at most 12 times: a word is at most 12 characters).
    """
    if not tail.endswith(")"):
        return False
    close = len(tail) - 1
    longest = 2 * _CREDIT_SIDE + _CREDIT_WORD_MAX
    opening = tail.rfind("(", max(0, close - longest - 1), close)
    if opening < 0 or tail.find(")", opening + 1, close) >= 0:
        return False
    # A word fits when it starts at most _CREDIT_SIDE characters into the parenthesis and
    # ends at most _CREDIT_SIDE characters before its end: it starts in [first, last].
    need = close - _CREDIT_SIDE
    first = max(opening + 1, need - _CREDIT_WORD_MAX)
    last = min(opening + 1 + _CREDIT_SIDE, close - 1)
    if first > last:
        return False
    # The stretch words starting there can cover, and one character either side of it
    # (word boundaries are read there); ``offset`` is where it starts in ``tail``.
    offset = first - 1
    stretch = _fold_credit(tail[offset : min(close, last + _CREDIT_WORD_MAX) + 1])
    position = 1
    while (word := _CREDIT_WORD.search(stretch, position)) is not None and word.start() + offset <= last:
        if word.end() + offset >= need:
            return True
        position = word.start() + 1
    return False


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
