"""An article page's headline and its authors, chosen from what the page declares about itself.

Why agreement rather than one preferred source: every single source is wrong on some share
of real pages.  JSON-LD ``headline`` is sometimes an SEO variant, ``og:title`` a social
teaser, the first ``<h1>`` the site's logo, and ``<title>`` carries the site name or a
section ("Opinion | …").  The headline the page really shows is the one most of them agree
on once site names and section affixes are taken off, so that is the one chosen.

Authors go through the same idea in reverse: values that are the site, the publisher, an
organisation typed as such in JSON-LD, a wire agency, a desk ("Staff", "Editorial"), an
e-mail, a URL or a login name are not people and are dropped; "By", "Posted by", trailing
handles, read times, dates and job titles are cut off names that are kept.

No rule here is keyed to a site or a page: the inputs are the page's own metadata, its host
name, and a small vocabulary of organisation words and wire agencies that holds on any site.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from consumers.parse.furniture import normalize_headline
from consumers.parse.page_meta import PageMeta, jsonld_types, main_jsonld, names_of

__all__ = [
    "choose_title",
    "clean_authors",
    "host_names",
    "jsonld_people",
    "organisation_names",
    "site_names",
]

#: What sites put between a headline and their name or section.
_SEPARATOR: Final = re.compile(r"\s+(?:\||-|–|—|::|·|»|•|~)\s+")
_MAX_TITLE: Final = 400
#: Second-level labels of country domains, not names (telegraph.co.uk, abc.net.au).
_SECOND_LEVEL: Final = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"})
_MAX_H1: Final = 3

_ORG_TYPES: Final = frozenset(
    {"Organization", "NewsMediaOrganization", "Corporation", "WebSite", "Brand", "GovernmentOrganization"}
)
#: Words that make a byline value a desk, a team or an outlet, never a person.
_ORG_WORDS: Final = frozenset(
    [
        "staff",
        "news",
        "newsroom",
        "desk",
        "editorial",
        "editors",
        "redaction",
        "redaktion",
        "redacción",
        "redazione",
        "redação",
        "redakcja",
        "редакція",
        "редакция",
        "team",
        "bureau",
        "wire",
        "wires",
        "agency",
        "agencies",
        "press",
        "service",
        "services",
        "reports",
        "report",
        "media",
        "online",
        "magazine",
        "digital",
        "network",
        "newsletter",
        "sport",
        "sports",
        "admin",
        "administrator",
        "webmaster",
        "contributors",
        "correspondents",
    ]
)
#: International wire agencies that appear as "authors" on sites that reprint them.
_AGENCIES: Final = frozenset(
    normalize_headline(name)
    for name in (
        "Reuters",
        "Thomson Reuters",
        "Associated Press",
        "The Associated Press",
        "AP",
        "AFP",
        "Agence France-Presse",
        "Agence France Presse",
        "dpa",
        "Deutsche Presse-Agentur",
        "ANSA",
        "EFE",
        "Xinhua",
        "TASS",
        "UPI",
        "Bloomberg",
        "Interfax",
        "PA",
        "PA Media",
        "Press Association",
        "Kyodo",
        "Yonhap",
        "Anadolu",
        "Ukrinform",
        "Укрінформ",
        "УНІАН",
        "UNIAN",
        "РИА Новости",
        "ТАСС",
        "CNN",
        "BBC",
    )
)
_ROLE_WORDS: Final = frozenset(
    [
        "writer",
        "reporter",
        "correspondent",
        "editor",
        "columnist",
        "contributor",
        "journalist",
        "photographer",
        "producer",
        "author",
        "is",
    ]
)
_PARTICLES: Final = frozenset(
    [
        "de",
        "da",
        "del",
        "della",
        "der",
        "den",
        "di",
        "do",
        "dos",
        "du",
        "la",
        "le",
        "van",
        "von",
        "bin",
        "ibn",
        "al",
        "el",
        "y",
        "e",
        "ten",
        "ter",
        "st",
        "zu",
        "af",
    ]
)
_LEAD: Final = re.compile(
    r"^\s*(?:(?:posted|written|written\s+and\s+edited|reported|words|story|text)\s+by|by|von|por|par|di"
    r"|від|автор(?:ка|и|ы)?|авторы|текст|text|author)\s*[:\-–]?\s+",
    re.IGNORECASE,
)
_TAIL: Final = re.compile(
    r"(?:\s+|(?<=[^\W\d_]))(?:published|updated|posted|last\s+updated|\d+\s*min(?:ute)?s?\s+read)\b.*$",
    re.IGNORECASE,
)
_HANDLE: Final = re.compile(r"\s*@\w+")
_NAME_SPLIT: Final = re.compile(r"\s*(?:,|;|\||\s&\s|\sand\s|\sund\s|\set\s|\sy\s|\sі\s|\sта\s|\sи\s)\s*")
_SENTENCE_STOP: Final = re.compile(r"(?<=[^\W\d_]{2})\.\s+(?=[^\W\d_])")
_MAX_AUTHOR_TEXT: Final = 300


def _key(text: str) -> str:
    """Comparison key for names: case, spacing and punctuation (and "www.", ".com") ignored."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _host_labels(url: str) -> set[str]:
    """Keys of a host and of its labels but the last ("thehill" of www.thehill.com,
    "telegraph" of telegraph.co.uk, "sky" and "news" of news.sky.com)."""
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    labels = [label for label in host.split(".") if label]
    out = {_key(host)} if host else set()
    out.update(_key(label) for label in labels[:-1] if label not in _SECOND_LEVEL)
    return {label for label in out if len(label) >= 2}


def host_names(meta: PageMeta, url: str) -> set[str]:
    """Comparison keys of the page's host names (fetched and canonical)."""
    return _host_labels(url) | (_host_labels(meta.canonical) if meta.canonical else set())


def _head(tree: LexborHTMLParser) -> LexborNode | None:
    """Where ``<meta>`` and ``<title>`` live: searching the head, not a body of a million
    elements, keeps these look-ups cheap on any page."""
    return tree.head or tree.root


def _meta_content(tree: LexborHTMLParser, selector: str) -> str:
    head = _head(tree)
    node = head.css_first(selector) if head is not None else None
    value = node.attributes.get("content") if node is not None else None
    return " ".join(html.unescape(value).split()) if value else ""


def site_names(tree: LexborHTMLParser, meta: PageMeta, url: str, *, hosts: bool = True) -> set[str]:
    """Comparison keys of the names the site goes by: ``og:site_name``, ``application-name``,
    the JSON-LD publisher and any WebSite/Organization object, and (``hosts``) the host
    name's labels."""
    names: set[str] = set()
    for selector in (
        'meta[property="og:site_name"]',
        'meta[name="application-name"]',
        'meta[name="publisher"]',
    ):
        value = _meta_content(tree, selector)
        if value:
            names.add(_key(value))
    for obj in meta.jsonld:
        publisher = obj.get("publisher")
        for name in names_of(publisher) if publisher is not None else []:
            names.add(_key(name))
        if jsonld_types(obj) & _ORG_TYPES:
            for name in names_of(obj.get("name")) + names_of(obj.get("alternateName")):
                names.add(_key(name))
    if hosts:
        names |= host_names(meta, url)
    names.discard("")
    return names


def _is_site(segment: str, sites: set[str], *, loose: bool = False) -> bool:
    """Whether ``segment`` is the site's name; ``loose`` (for a separated title segment) also
    takes a name that extends or shortens one ("TechCrunch" / techcrunch.com, "Sportsnet.ca")."""
    key = _key(segment)
    if not key or key in sites:
        return True
    if not loose or len(key) < 4:
        return False
    return any(
        len(site) >= 4 and abs(len(site) - len(key)) <= 4 and (key.startswith(site) or site.startswith(key))
        for site in sites
    )


def _strip_site(text: str, sites: set[str]) -> str:
    """``text`` without a leading or trailing site name set off by a separator."""
    text = " ".join(text.split())  # one space per run: the separator regex stays linear
    for _ in range(3):
        seps = list(_SEPARATOR.finditer(text))
        if not seps:
            break
        if _is_site(text[seps[-1].end() :], sites, loose=True):
            text = text[: seps[-1].start()].strip()
        elif _is_site(text[: seps[0].start()], sites, loose=True):
            text = text[seps[0].end() :].strip()
        else:
            break
    return text


def _without_affix(text: str, others: Iterable[str]) -> str:
    """``text`` reduced to another candidate it extends by a separator and an affix: a
    ``<title>`` of "Opinion | Headline" or "Headline - Site" next to an ``<h1>`` "Headline"."""
    text = " ".join(text.split())  # one space per run: the separator regex stays linear
    key = normalize_headline(text)
    best = text
    for other in others:
        other_key = normalize_headline(other)
        if not other_key or other_key == key or len(other_key) < 8 or len(other) >= len(best):
            continue
        if not (key.startswith(other_key + " ") or key.endswith(" " + other_key)):
            continue
        # the rest must be set off by a separator, not be part of the sentence
        # and be the shorter side: "Headline | Editorial" next to a candidate "Editorial" keeps
        # the headline, the affix being the candidate
        for match in _SEPARATOR.finditer(text):
            head, tail = normalize_headline(text[: match.start()]), normalize_headline(text[match.end() :])
            rest = tail if head == other_key else head if tail == other_key else None
            if rest is not None and len(rest.split()) < len(other_key.split()):
                best = other
                break
    return best


def _token_f1(a: str, b: str) -> float:
    left, right = set(normalize_headline(a).split()), set(normalize_headline(b).split())
    common = len(left & right)
    if not common:
        return 0.0
    return 2 * common / (len(left) + len(right))


def _candidates(tree: LexborHTMLParser, meta: PageMeta) -> list[tuple[str, str]]:
    """Every headline the page declares as ``(source, text)``, most trusted source first.

    Sources that copy one CMS field (JSON-LD ``headline`` and ``name``; ``og:title`` and
    ``twitter:title``; several ``<h1>``) share a source name, so a copy is not agreement."""
    main = main_jsonld(meta.jsonld) or {}
    out: list[tuple[str, str]] = []
    for key in ("headline", "name"):
        value = main.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str):
            out.append(("jsonld", value))
    out.append(("social", _meta_content(tree, 'meta[property="og:title"]')))
    # one walk of the body for both: h1s, and the first microdata headline
    h1s = 0
    itemprop = ""
    for node in tree.css('h1, [itemprop~="headline"]'):
        if node.tag == "h1" and h1s < _MAX_H1:
            out.append(("h1", node.text(deep=True)))
            h1s += 1
        if not itemprop and "headline" in (node.attributes.get("itemprop") or "").split():
            itemprop = node.attributes.get("content") or node.text(deep=True)
        if h1s >= _MAX_H1 and itemprop:
            break
    out.append(("microdata", itemprop))
    out.append(("social", _meta_content(tree, 'meta[name="twitter:title"]')))
    head = _head(tree)
    title = head.css_first("title") if head is not None else None
    out.append(("title", title.text(deep=True) if title is not None else ""))
    cleaned = [(source, " ".join(html.unescape(text or "").split())[:_MAX_TITLE]) for source, text in out]
    return [(source, text) for source, text in cleaned if text]


def choose_title(tree: LexborHTMLParser, meta: PageMeta, url: str) -> str:
    """The page's headline: the declared title most sources agree on, site name removed."""
    sites = site_names(tree, meta, url)
    found = [(source, _strip_site(text, sites)) for source, text in _candidates(tree, meta)]
    present = [text for _source, text in found if text and not _is_site(text, sites)]
    found = [(source, _without_affix(text, present)) for source, text in found]
    best, best_score = "", 0.0
    for source, candidate in found:
        key = normalize_headline(candidate)
        if not key or _is_site(candidate, sites):
            continue
        # one vote per other source: the best agreement it offers
        votes: dict[str, float] = {}
        for other_source, other in found:
            if other_source == source:
                continue
            if normalize_headline(other) == key:
                vote = 1.0
            elif _token_f1(candidate, other) >= 0.8:
                vote = 0.5
            else:
                continue
            votes[other_source] = max(votes.get(other_source, 0.0), vote)
        score = sum(votes.values())
        # a one-word "headline" beside longer ones is a section or a logo
        if len(key.split()) == 1 and any(len(normalize_headline(c).split()) > 2 for c in present):
            score -= 1.0
        if score > best_score or not best:
            best, best_score = candidate, score
    return best or meta.title


# --- authors ---------------------------------------------------------------------------------


def _author_entries(meta: PageMeta) -> list[dict[str, Any]]:
    """The main JSON-LD object's ``author`` entries, ``{"@id": …}`` references resolved to
    the objects they name elsewhere on the page (Yoast-style ``@graph`` pages keep the Person
    apart from the article)."""
    main = main_jsonld(meta.jsonld) or {}
    raw: Any = main.get("author")
    by_id = {obj["@id"]: obj for obj in meta.jsonld if isinstance(obj.get("@id"), str)}
    out: list[dict[str, Any]] = []
    for entry in raw if isinstance(raw, list) else [raw]:
        if isinstance(entry, str):
            out.append({"name": entry})
        elif isinstance(entry, dict):
            ref = entry.get("@id")
            if "name" not in entry and isinstance(ref, str) and ref in by_id:
                entry = by_id[ref]
            out.append(entry)
    return out


def jsonld_people(meta: PageMeta) -> list[str]:
    """Names of the main JSON-LD object's authors that are not typed as organisations."""
    return [
        name
        for entry in _author_entries(meta)
        if not jsonld_types(entry) & _ORG_TYPES
        for name in names_of(entry)
    ]


def organisation_names(meta: PageMeta) -> set[str]:
    """Keys of names JSON-LD marks as organisations: an ``author`` typed Organization, the
    publisher, and every Organization/WebSite object on the page."""
    out: set[str] = set()
    for entry in _author_entries(meta):
        if jsonld_types(entry) & _ORG_TYPES:
            out.update(_key(name) for name in names_of(entry))
    for obj in meta.jsonld:
        if jsonld_types(obj) & _ORG_TYPES:
            out.update(_key(name) for name in names_of(obj.get("name")))
    out.discard("")
    return out


def _is_person(name: str, not_people: set[str], hosts: set[str]) -> bool:
    key = _key(name)
    if not key or key in not_people or normalize_headline(name) in _AGENCIES:
        return False
    # a one-word value equal to the host is the site ("LinkNaija"); a full name equal to it
    # is a personal site's owner, and stays
    if key in hosts and len(name.split()) == 1:
        return False
    if any(ch.isdigit() for ch in name) or "@" in name or "://" in name or "www." in name.lower():
        return False
    if re.search(r"\.(?:com|net|org|co|ru|ua|de|uk|in|it|fr|es|br)\b", name, re.IGNORECASE):
        return False
    words = name.split()
    if not words or len(words) > 5 or words[0].casefold() in ("the", "a", "an"):
        return False
    lowered = [w.strip(".,'’()").casefold() for w in words]
    if any(w in _ORG_WORDS for w in lowered):
        return False
    if len(words) == 1:
        word = words[0]
        # a login ("admin", "jdadmin") or an acronym ("RT", "KWCH"): not a person's name
        if word.islower() or (word.isupper() and len(word) <= 6):
            return False
    for word, low in zip(words, lowered, strict=True):
        first = word.lstrip("('‘\"")[:1]
        if first and first.upper() != first.lower() and not first.isupper() and low not in _PARTICLES:
            return False
    return True


def _name_parts(value: str) -> list[str]:
    text = " ".join(html.unescape(value).split())[:_MAX_AUTHOR_TEXT]
    text = _LEAD.sub("", text)
    text = _TAIL.sub("", text)
    text = _HANDLE.sub("", text)
    text = _SENTENCE_STOP.sub(", ", text)
    parts: list[str] = []
    for part in _NAME_SPLIT.split(text):
        part = _LEAD.sub("", part).strip(" .·|–—-:")
        # cut at the first word with a digit: "Carlos Nadalim 27/09/2018 Comente!"
        words = part.split()
        for i, word in enumerate(words):
            if any(ch.isdigit() for ch in word):
                words = words[:i]
                break
        truncated = len(words) < len(part.split())
        part = " ".join(words).strip(" .·|–—-:")
        if part:
            parts.append(part)
        if truncated:
            # what follows a date in a byline block is its categories or a comment count
            break
    return parts


def _trim_affiliation(name: str, not_people: set[str]) -> str:
    """``name`` without an outlet or a job title run on after it with no separator ("Tom
    Davies Associated Press", "Kevin McCoy USA TODAY", "Tom Gillespie News reporter")."""
    words = name.split()
    for size in range(min(4, len(words) - 2), 0, -1):
        tail = " ".join(words[-size:])
        if normalize_headline(tail) in _AGENCIES or _key(tail) in not_people:
            words = words[:-size]
            break
    while len(words) > 2 and words[-1].strip(".,").casefold() in _ROLE_WORDS | _ORG_WORDS:
        words.pop()
    return " ".join(words)


def clean_authors(values: Iterable[str], not_people: set[str], hosts: Iterable[str] = ()) -> list[str]:
    """People's names among byline values; ``not_people`` holds keys of the site's declared
    names and the page's organisations (see :func:`site_names` with ``hosts=False``,
    :func:`organisation_names`), ``hosts`` those of its host names (:func:`host_names`).

    A job title or affiliation after a name ("Tom Krisher, AP Auto Writer",
    "Troy L. Smith, Cleveland.com", "Victor Tangermann, Futurism") is dropped with the other
    non-people."""
    out: list[str] = []
    seen: set[str] = set()
    host_keys = set(hosts)
    for value in values:
        full_name_seen = False
        for raw_part in _name_parts(value):
            part = _trim_affiliation(raw_part, not_people | host_keys)
            if full_name_seen and len(part.split()) == 1:
                continue  # one word after a full name in the same byline: its outlet
            full_name_seen = full_name_seen or len(part.split()) >= 2
            lowered = {w.strip(".,").casefold() for w in part.split()}
            if lowered & _ROLE_WORDS:
                continue
            if part.isupper() and len(part.split()) >= 2:
                part = part.title()
            key = _key(part)
            if key in seen or not _is_person(part, not_people, host_keys):
                continue
            seen.add(key)
            out.append(part)
    return out
