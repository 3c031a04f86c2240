"""Which feed entries are only a teaser, whose story is on the linked page (full text).

The fetcher resolves each feed's ``full_text`` setting (``auto``, ``always``, ``never``) and
sends it with the document; parse decides per entry here.  Only feed entries qualify: an
``article`` item with no parent (not a live update, not split out of anything), its body
read from the feed (``body_source: feed``), and an http(s) link to fetch.  A feed entry
that holds a live blog (its updates name it as their parent) is left alone too: its
updates are the story.  ``always`` takes every such entry; ``auto`` takes teasers:

* text (the body, else the summary) of fewer than ``teaser_words`` words (100 by default:
  WordPress cuts excerpts at 55, most news feeds at a sentence or two), or
* text that ends in an ellipsis (``...``, ``…``, ``[…]``, ``[...]``, ``(…)``), or in a
  "read more" link's words ("Read more", "Continue reading", "Read the full story",
  "(more…)", and the same in a few other languages), possibly followed by an arrow or
  closing punctuation, or by WordPress's "The post … appeared first on …" line.

Everything here is pure and linear in the text: words are counted by one split that stops
at ``teaser_words``, and the ending is compared on the last few hundred characters with
``str.endswith`` (no regex runs on the entry's text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from ingestor.models import NewsItem

__all__ = ["FullTextMode", "is_teaser", "needs_page", "read_mode", "requests_among"]

FullTextMode = Literal["auto", "always", "never"]
_MODES: Final[dict[str, FullTextMode]] = {"auto": "auto", "always": "always", "never": "never"}

#: Only the text's end is looked at for a "read more" marker.
_TAIL_CHARS: Final = 400
#: Trailing characters that decorate a marker: arrows, guillemets, brackets, dashes, dots...
_DECORATION: Final = " \t\n\r\xa0\u200b.:;,!?-–—»›→⟶➜➔>»)]}\"'”’*|/\\"
_ELLIPSES: Final = ("...", "…", "[…]", "[...]", "(…)", "(...)", "[ … ]", "[ ... ]")
#: "Read more" words, casefolded, in the order of how often feeds use them (a few languages).
_MORE: Final = (
    "read more",
    "continue reading",
    "read the full story",
    "read the full article",
    "read full story",
    "read full article",
    "read the rest",
    "read the rest of this entry",
    "keep reading",
    "weiterlesen",
    "mehr lesen",
    "lire la suite",
    "en savoir plus",
    "leer más",
    "seguir leyendo",
    "leggi tutto",
    "continua a leggere",
    "lees meer",
    "verder lezen",
    "czytaj dalej",
    "читать далее",
    "читать дальше",
    "читати далі",
    "детальніше",
    "докладніше",
    "подробнее",
    "leia mais",
    "continue lendo",
    "läs mer",
    "les mer",
    "læs mere",
    "lue lisää",
    "devamını oku",
)
#: WordPress appends "The post <title> appeared first on <site>." to every excerpt.
_WORDPRESS_FOOTER: Final = ("the post ", " appeared first on ")


def read_mode(value: str | None) -> FullTextMode | None:
    """A ``feed-full-text`` header as a mode: a missing header is ``never`` (older records
    and replays of them); an unknown value is ``None``, for the caller to report."""
    if value is None:
        return "never"
    return _MODES.get(value.strip().lower())


def word_count_below(text: str, limit: int) -> bool:
    """Whether ``text`` has fewer than ``limit`` words (whitespace-separated); one C-speed
    pass that splits off no more than ``limit`` words."""
    if limit <= 0:
        return False
    return len(text.split(maxsplit=limit - 1)) < limit


def _without_wordpress_footer(tail: str) -> str:
    """``tail`` without a trailing "The post … appeared first on …" paragraph."""
    start = tail.rfind("\n\n")
    last = tail[start + 2 :] if start >= 0 else tail
    folded = last.casefold()
    if folded.startswith(_WORDPRESS_FOOTER[0]) and _WORDPRESS_FOOTER[1] in folded:
        return tail[:start] if start >= 0 else ""
    return tail


def ends_like_teaser(text: str) -> bool:
    """Whether ``text`` ends in an ellipsis or in "read more"-like words."""
    tail = _without_wordpress_footer(text[-_TAIL_CHARS:]).rstrip()
    if tail.endswith(_ELLIPSES):
        return True
    stripped = tail.rstrip(_DECORATION)
    if stripped != tail and stripped.endswith(("…", "...")):
        return True  # "… »", "...]"
    folded = stripped.casefold()
    for marker in _MORE:
        if folded.endswith(marker):
            before = folded[: len(folded) - len(marker)]
            # a whole word or phrase: "…furthermore" does not end in "more"
            if not before or not before[-1].isalnum():
                return True
    return False


def is_teaser(text: str, teaser_words: int) -> bool:
    """``auto``'s rule: fewer than ``teaser_words`` words, or a teaser's ending."""
    return word_count_below(text, teaser_words) or ends_like_teaser(text)


def _http(url: str | None) -> bool:
    return url is not None and url[:8].lower().startswith(("http://", "https://"))


def needs_page(item: NewsItem, mode: FullTextMode, teaser_words: int) -> bool:
    """Whether ``item`` is a feed entry whose linked page should be fetched for its text."""
    if mode == "never" or item.kind != "article" or item.parent_id is not None:
        return False
    if item.body_source != "feed" or not _http(item.url):
        return False
    if mode == "always":
        return True
    return is_teaser(item.body or item.summary or "", teaser_words)


def requests_among(items: Iterable[NewsItem], mode: FullTextMode, teaser_words: int) -> set[str]:
    """Ids of the items of one document that go to the article requests instead of
    ``news.items``: :func:`needs_page`, minus entries that hold a live blog (some of the
    document's items name them as their parent)."""
    if mode == "never":
        return set()
    listed = list(items)
    parents = {item.parent_id for item in listed if item.parent_id is not None}
    return {item.id for item in listed if item.id not in parents and needs_page(item, mode, teaser_words)}
