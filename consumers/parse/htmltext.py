"""HTML to the plain text subscribers receive.

Subscribers get text, never markup: feeds and pages carry HTML fragments full of share
buttons, image captions and ad slots that must not reach a reader or the content hash.
Lexbor (via selectolax) does the parsing and entity handling in C; we only mark block
boundaries and tidy whitespace, which keeps this fast enough to add little to feedparser's
own time.
"""

from __future__ import annotations

import html as htmllib
import re
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

#: Elements whose content is never article text.
DROP_TAGS: Final = (
    "script",
    "style",
    "nav",
    "aside",
    "figure",
    "figcaption",
    "noscript",
    "template",
    "iframe",
    "svg",
    "math",
    "object",
    "embed",
    "canvas",
    "audio",
    "video",
    "form",
    "button",
    "select",
    "textarea",
    "input",
    "head",
    "title",
)

#: Elements that start a new paragraph.
BLOCK_TAGS: Final = (
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "address",
    "details",
    "summary",
)

_DROP_SELECTOR: Final = ",".join(DROP_TAGS)
_MARKED_SELECTOR: Final = "[class],[id],[role],[hidden],[aria-hidden]"
_LAYOUT_SELECTOR: Final = ",".join((*BLOCK_TAGS, "br", "td", "th"))

#: class/id tokens that mark share, subscribe and advertising furniture.
_BOILERPLATE_TOKENS: Final = frozenset(
    {
        "ad",
        "ads",
        "adv",
        "advert",
        "adverts",
        "advertisement",
        "advertising",
        "adslot",
        "adunit",
        "banner",
        "share",
        "shares",
        "sharing",
        "sharebar",
        "sharetools",
        "social",
        "subscribe",
        "subscription",
        "newsletter",
        "promo",
        "sponsor",
        "sponsored",
        "related",
        "mostread",
        "most-read",
        "popular",
        "outbrain",
        "taboola",
        "paywall",
        "cookie",
        "cookies",
        "skip",
        "skiplink",
        "sr-only",
        "visually-hidden",
        "visuallyhidden",
    }
)
#: One of those tokens inside a class/id value, where splitting the value on whitespace,
#: underscores and letter-letter hyphens would isolate it.  Hyphenated tokens cannot survive
#: that split, so they count only as the whole value.  A search is ~5x cheaper than the split.
_TOKEN_FOUND: Final = re.compile(
    r"(?:\A|[\s_]|(?<=[a-z])-)(?:"
    + "|".join(sorted((re.escape(t) for t in _BOILERPLATE_TOKENS if "-" not in t), key=len, reverse=True))
    + r")(?=\Z|[\s_]|-[a-z])"
)

#: Whole paragraphs that are furniture however they are marked up.
_BOILERPLATE_PARAGRAPH: Final = re.compile(
    r"""^(?:
        advertisement | (?:sponsored|paid)\s+content | skip\s+to\s+(?:main\s+)?content
      | share\s+(?:this|on\s+\w+|via\s+\w+)[^.]{0,40} | share | tweet | email\s+this
      | (?:sign\s+up|subscribe)\b[^.]{0,80}newsletter[^.]{0,40}
      | subscribe(?:\s+now|\s+here|\s+to\s+\w+(?:\s+\w+){0,3})?
      | (?:read|see)\s+more | continue\s+reading[^.]{0,80} | most\s+read | related(?:\s+(?:stories|articles))?
      | the\s+post\s+.{1,300}\s+appeared\s+first\s+on\s+.{1,120}
    )[.!:…]*$""",
    re.IGNORECASE | re.VERBOSE,
)

_BOILERPLATE_MAX: Final = 500
_PARA: Final = "\ue000"
_LINE: Final = "\ue001"
_SPACE_RUN: Final = re.compile(r"[^\S\n]+|[\u200b\u2060\ufeff]+")
#: Runs of whitespace that are not already one plain space (replacing every lone space
#: with itself costs more than the rest of the tidying).
_ANY_SPACE_RUN: Final = re.compile(r"\s{2,}|[^\S ]")
_BLANK_LINES: Final = re.compile(r"\n[ \t]*\n\s*")
_INVISIBLE: Final = re.compile(r"[\u200b\u2060\ufeff\u00ad]")


def _is_boilerplate(node: LexborNode) -> bool:
    attrs = node.attributes
    role = attrs.get("role")
    if role in ("navigation", "complementary", "banner", "contentinfo"):
        return True
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    for key in ("class", "id"):
        value = attrs.get(key)
        if not value:
            continue
        value = value.lower()
        if value in _BOILERPLATE_TOKENS or _TOKEN_FOUND.search(value) is not None:
            return True
    return False


def _tidy(text: str, *, para: str, line: str | None) -> str:
    """Collapse whitespace inside paragraphs and drop empty or boilerplate ones."""
    paragraphs: list[str] = []
    if line is not None:
        text = _ANY_SPACE_RUN.sub(" ", text)
    for raw in text.split(para):
        if line is None:
            chunk = "\n".join(p for p in (_SPACE_RUN.sub(" ", part).strip() for part in raw.split("\n")) if p)
        elif line in raw:
            chunk = "\n".join(p for p in (part.strip() for part in raw.split(line)) if p)
        else:
            chunk = raw.strip()
        if chunk and (len(chunk) > _BOILERPLATE_MAX or not _BOILERPLATE_PARAGRAPH.match(chunk)):
            paragraphs.append(chunk)
    return "\n\n".join(paragraphs)


def normalize_text(text: str) -> str:
    """Plain text to the body convention: blank-line paragraphs, single spaces, no NBSPs."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _tidy(_BLANK_LINES.sub(_PARA, text), para=_PARA, line=None)


def html_to_text(html: str) -> str:
    """An HTML fragment or document as clean plain text, paragraphs separated by ``"\\n\\n"``.

    Input without any tag is treated as text (entities still unescaped), so a feed that puts
    plain text with blank lines in an HTML field keeps its paragraphs.
    """
    if not html:
        return ""
    if "<" not in html:
        return normalize_text(htmllib.unescape(html) if "&" in html else html)
    tree = LexborHTMLParser(html)
    root = tree.body or tree.root
    if root is None:
        return ""
    for node in root.css(_DROP_SELECTOR):
        node.remove()
    for node in root.css(_MARKED_SELECTOR):
        if _is_boilerplate(node):
            node.remove()
    for node in root.css(_LAYOUT_SELECTOR):
        tag = node.tag
        if tag == "br":
            node.insert_after(_LINE)
        elif tag in ("td", "th"):
            node.insert_after(" ")
        else:
            node.insert_before(_PARA)
            node.insert_after(_PARA)
    text = root.text(deep=True, separator="")
    return _tidy(_INVISIBLE.sub("", text), para=_PARA, line=_LINE)
