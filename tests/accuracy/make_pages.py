"""Compose the accuracy fixtures: live pages in every shape, with their expected items.

Run ``python tests/accuracy/make_pages.py`` to regenerate ``tests/accuracy/pages/``.

The expected items come from the scenario itself (what the page is meant to say: each
post's real instant, title, paragraphs), never from the parser.  Instants are written as
local wall-clock readings plus ``fold`` and turned into UTC with zoneinfo here; the page
then shows only what a publisher would show (a clock-only "1:10 AM" on a text capture or a
BBC-style stream, an ISO date with offset in JSON-LD), and the parser has to recover the
instant.  Scenarios on the autumn repeated hour are composed so that the newest-first rule
of docs/parsing.md ("Time rules") determines the instant; the comments say why.
"""

# ruff: noqa: E501  (HTML templates and month tables read better unwrapped)

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_text import AUTHORS, HEADLINES, PARAGRAPHS

OUT = Path(__file__).resolve().parent / "pages"
NBSP = "\u00a0"

MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "uk": [
        "січня",
        "лютого",
        "березня",
        "квітня",
        "травня",
        "червня",
        "липня",
        "серпня",
        "вересня",
        "жовтня",
        "листопада",
        "грудня",
    ],
    "ru": [
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ],
    "de": [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
}
UPDATED = {"en": "Updated", "uk": "Оновлено", "ru": "Обновлено", "de": "Aktualisiert", "es": "Actualizado"}
AUDIO = {
    "en": "This audio is created with AI assistance",
    "uk": "Це аудіо створено за допомогою ШІ",
    "ru": "Это аудио создано с помощью ИИ",
    "de": "Artikel anhören",
    "es": "Escuchar artículo",
}
CAPTIONS = {
    "en": "A crane operator walks along the quay at first light. (Ada Brook/Harbour Wire via Stock Images)",
    "uk": "Ремонтна бригада працює біля пошкодженої підстанції. (Фото: Степан Гай/Агентство)",
    "ru": "Снегоуборочная техника на центральной улице. (Фото: Илья Петров/Агентство)",
    "de": "Ein Kranführer auf dem Kai am frühen Morgen. (Foto: Jonas Berg/Agentur)",
    "es": "Un operario camina por el muelle al amanecer. (Foto: Ana Torres/Agencia)",
}


@dataclass
class Post:
    when: str  # local wall clock "YYYY-MM-DD HH:MM"
    title: int | None  # index into HEADLINES[lang], None for a headline-less post
    paras: list[int]
    fold: int = 0
    updated: str | None = None  # local wall clock of "Updated"
    updated_fold: int = 0
    anchor: str | None = None
    authors: list[str] = field(default_factory=list)
    pinned: bool = False
    offset_style: str = "local"  # how JSON-LD/<time> write it: "local" (+hh:mm), "z", "naive"
    edit: str = ""  # text appended to the last paragraph (edited variant of a pair)


@dataclass
class Scenario:
    name: str
    shape: str
    lang: str
    tz: str
    fetched: str  # UTC "YYYY-MM-DDTHH:MM:SSZ"
    posts: list[Post]
    clock: str = "12h"
    capture_date: str | None = None
    title: int | None = 0
    article_paras: list[int] = field(default_factory=list)
    authors: int = 0
    published: str | None = None  # local
    modified: str | None = None  # local
    form: str = ""
    url: str = ""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def page_url(self) -> str:
        # The two fetches of a pair ("…-pair-a", "…-pair-b") are the same page.
        name = self.name[:-2] if "-pair-" in self.name else self.name
        return self.url or f"https://news.example.test/live/{name}"


def inst(zone: ZoneInfo, local: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def z(d: datetime | None) -> str | None:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ") if d else None


def clock(local: datetime, style: str) -> str:
    if style == "24h":
        return local.strftime("%H:%M")
    return f"{local.hour % 12 or 12}:{local.minute:02d}{NBSP}{'AM' if local.hour < 12 else 'PM'}"


def human_date(lang: str, d: datetime, style: str) -> str:
    m = MONTHS[lang][d.month - 1]
    t = clock(d, style).replace(NBSP, " ")
    if lang == "en":
        return f"{m} {d.day}, {d.year} {t}"
    if lang == "de":
        return f"{d.day}. {m} {d.year}, {t} Uhr"
    if lang == "es":
        return f"{d.day} de {m} de {d.year} - {t}"
    return f"{d.day} {m} {d.year}, {t}"


def byline(lang: str, names: list[str], d: datetime, style: str) -> str:
    joiners = {"en": " and ", "uk": " та ", "ru": " и ", "de": " und ", "es": " y "}
    who = joiners[lang].join(names) if len(names) <= 2 else ", ".join(names)
    prefix = {"en": "by", "uk": "Автори:", "ru": "Автор:", "de": "Von", "es": "Por"}[lang]
    tail = " 3 min read" if lang == "en" else ""
    sep = " " if lang == "en" else ", "
    return f"{prefix} {who}{sep}{human_date(lang, d, style)}{tail}"


def post_text(sc: Scenario, p: Post) -> tuple[str, list[str]]:
    title = HEADLINES[sc.lang][p.title] if p.title is not None else ""
    paras = [PARAGRAPHS[sc.lang][i] for i in p.paras]
    if p.edit:
        paras[-1] = paras[-1] + " " + p.edit
    return title, paras


def iso(sc: Scenario, p: Post, local: str, fold: int) -> str:
    instant = inst(sc.zone, local, fold)
    if p.offset_style == "z":
        return instant.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if p.offset_style == "naive":
        return datetime.fromisoformat(local).strftime("%Y-%m-%dT%H:%M:%S")
    return instant.astimezone(sc.zone).isoformat()


# --- expected -------------------------------------------------------------------------------


def expected(sc: Scenario) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    zone = sc.zone
    if sc.article_paras and sc.title is not None:
        paras = [PARAGRAPHS[sc.lang][i] for i in sc.article_paras]
        dated = sc.shape in ("text", "jsonld", "article")
        pub = inst(zone, sc.published) if sc.published and dated else None
        mod = inst(zone, sc.modified) if sc.modified and dated else None
        out.append(
            {
                "kind": "article",
                "title": HEADLINES[sc.lang][sc.title],
                "published_at": z(pub),
                "updated_at": z(mod) if mod and pub and mod > pub else None,
                "body_start": paras[0][:40],
                "body_end": paras[-1][-40:],
                "authors": AUTHORS[sc.lang][sc.authors] if sc.shape in ("text", "article", "jsonld") else [],
                "language": sc.lang,
            }
        )
    seen: set[str] = set()
    posts = []
    for p in sc.posts:
        if p.anchor and p.anchor in seen:
            continue
        if p.anchor:
            seen.add(p.anchor)
        posts.append(p)
    posts.sort(key=lambda p: inst(zone, p.when, p.fold), reverse=True)
    for p in posts:
        title, paras = post_text(sc, p)
        pub = inst(zone, p.when, p.fold)
        upd = inst(zone, p.updated, p.updated_fold) if p.updated else None
        entry: dict[str, Any] = {
            "kind": "live_update",
            "title": title,
            "published_at": z(pub),
            "updated_at": z(upd),
            "body_start": paras[0][:40],
            "body_end": paras[-1][-40:],
            "authors": p.authors,
            "language": sc.lang,
        }
        if p.anchor:
            entry["anchor"] = p.anchor
        out.append(entry)
    return out


# --- renderers ------------------------------------------------------------------------------


def render_text(sc: Scenario) -> str:
    zone = sc.zone
    lines: list[str] = []
    if sc.capture_date:
        lines.append(f" date {sc.capture_date} Skip to content")
    if sc.article_paras and sc.title is not None:
        names = AUTHORS[sc.lang][sc.authors]
        pub = inst(zone, sc.published or "2000-01-01 00:00").astimezone(zone)
        lines += [HEADLINES[sc.lang][sc.title], "", byline(sc.lang, names, pub, sc.clock)]
        lines += [CAPTIONS[sc.lang], AUDIO[sc.lang], ""]
        for i in sc.article_paras:
            lines += [PARAGRAPHS[sc.lang][i], ""]
        label = {"en": "Authors", "uk": "Автори", "ru": "Авторы", "de": "Autoren", "es": "Autores"}[sc.lang]
        lines.append(f"{label}: {', '.join(names)}")
    for p in sc.posts:
        local = inst(zone, p.when, p.fold).astimezone(zone)
        stamp = clock(local, sc.clock)
        if p.updated is not None or sc.lang == "en":
            upd = ""
            if p.updated:
                upd = clock(inst(zone, p.updated, p.updated_fold).astimezone(zone), sc.clock)
            stamp += f" {NBSP}({UPDATED[sc.lang]}:{NBSP}{upd})"
        lines.append(stamp)
        lines.append("")
        title, paras = post_text(sc, p)
        if title:
            lines += [title, ""]
        for para in paras:
            lines += [para, ""]
    return "\n".join(lines) + "\n"


def page(sc: Scenario, head_extra: str, body: str, standfirst: bool = True) -> str:
    title = HEADLINES[sc.lang][sc.title] if sc.title is not None else "Live"
    intro = ""
    if standfirst and sc.article_paras:
        intro = "".join(f"<p>{html.escape(PARAGRAPHS[sc.lang][i])}</p>" for i in sc.article_paras)
        intro = f'<div class="standfirst">{intro}</div>'
    return f"""<!DOCTYPE html>
<html lang="{sc.lang}"><head><meta charset="utf-8"><title>{html.escape(title)} | Example News</title>
<link rel="canonical" href="{sc.page_url()}">
<meta property="og:title" content="{html.escape(title)}">
{head_extra}</head>
<body><a class="skip-link" href="#main">Skip to content</a>
<header class="site-header"><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav></header>
<main id="main"><article class="live-article">
<h1>{html.escape(title)}</h1>
{intro}
<div class="share-tools"><button>Share on Facebook</button><button>Copy link</button></div>
{body}
</article>
<aside class="most-read"><h2>Most read</h2><ol><li><a href="/a">Teaser story about something else entirely</a> <time datetime="2020-01-01T10:00:00Z">10:00</time></li>
<li><a href="/b">Another teaser that is not part of the live blog</a> <time datetime="2020-01-01T09:00:00Z">09:00</time></li></ol></aside>
</main>
<footer><p>© Example News. All rights reserved.</p><div class="newsletter">Sign up to our daily newsletter</div></footer>
</body></html>
"""


def paras_html(paras: list[str]) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in paras)


def jsonld_update(sc: Scenario, p: Post) -> dict[str, Any]:
    title, paras = post_text(sc, p)
    obj: dict[str, Any] = {
        "@type": "BlogPosting",
        "datePublished": iso(sc, p, p.when, p.fold),
        "articleBody": "\n\n".join(paras),
    }
    if title:
        obj["headline"] = title
    elif sc.form == "autofill":
        obj["headline"] = paras[0][:30].rstrip() + "…"
    if p.updated:
        obj["dateModified"] = iso(sc, p, p.updated, p.updated_fold)
    else:
        obj["dateModified"] = obj["datePublished"]
    if p.anchor:
        obj["url"] = f"{sc.page_url()}?page=with:{p.anchor}#{p.anchor}"
    if p.authors:
        obj["author"] = [{"@type": "Person", "name": a} for a in p.authors]
    return obj


def article_ld(sc: Scenario, kind: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@type": kind,
        "headline": HEADLINES[sc.lang][sc.title] if sc.title is not None else "",
        "author": [{"@type": "Person", "name": n} for n in AUTHORS[sc.lang][sc.authors]],
        "inLanguage": sc.lang,
    }
    if sc.published:
        obj["datePublished"] = inst(sc.zone, sc.published).astimezone(sc.zone).isoformat()
    if sc.modified:
        obj["dateModified"] = inst(sc.zone, sc.modified).astimezone(sc.zone).isoformat()
    return obj


def render_jsonld(sc: Scenario) -> str:
    live = article_ld(sc, "LiveBlogPosting")
    ld_posts = [p for p in sc.posts if not p.pinned]
    if sc.form == "partial":
        ld_posts = ld_posts[:3]
    live["liveBlogUpdate"] = [jsonld_update(sc, p) for p in ld_posts]
    data: Any
    if sc.form == "graph":
        data = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage", "name": "x"}, live]}
    elif sc.form == "array":
        data = [{"@context": "https://schema.org", "@type": "Organization", "name": "Example News"}, live]
    else:
        data = {"@context": "https://schema.org", **live}
    script = f'<script type="application/ld+json">{json.dumps(data, ensure_ascii=False)}</script>'
    blocks = "".join(block_html(sc, p, with_id=True) for p in sc.posts) if sc.form == "partial" else ""
    body = f'<div class="blocks">{blocks}</div>' if blocks else "<div class='live-feed'></div>"
    return page(sc, script, body)


def local_text(sc: Scenario, local: str, fold: int) -> str:
    return clock(inst(sc.zone, local, fold).astimezone(sc.zone), sc.clock).replace(NBSP, " ")


def block_html(sc: Scenario, p: Post, with_id: bool) -> str:
    title, paras = post_text(sc, p)
    head = f"<h2>{html.escape(title)}</h2>" if title else ""
    upd = ""
    if p.updated:
        upd = (
            f'<p class="block-updated">{UPDATED[sc.lang]} <time datetime="{iso(sc, p, p.updated, p.updated_fold)}">'
            f"{local_text(sc, p.updated, p.updated_fold)}</time></p>"
        )
    by = f'<p class="byline">By {html.escape(" and ".join(p.authors))}</p>' if p.authors else ""
    ident = f' id="{p.anchor}"' if with_id and p.anchor else ""
    return (
        f'<article{ident} class="block">'
        f'<p class="block-time"><time datetime="{iso(sc, p, p.when, p.fold)}">{local_text(sc, p.when, p.fold)}</time></p>'
        f'{head}{by}<div class="block-body">{paras_html(paras)}'
        f'<figure><img src="x.jpg"><figcaption>{html.escape(CAPTIONS[sc.lang])}</figcaption></figure></div>'
        f'{upd}<div class="share">Share</div></article>\n'
    )


def render_guardian(sc: Scenario) -> str:
    pinned = "".join(block_html(sc, p, True) for p in sc.posts if p.pinned)
    stream = "".join(block_html(sc, p, True) for p in sc.posts if not p.pinned)
    body = f'<div class="pinned-post">{pinned}</div>' if pinned else ""
    body += f'<div class="key-events"><ul>{key_events(sc)}</ul></div><div class="blocks">{stream}</div>'
    return page(sc, "", body)


def key_events(sc: Scenario) -> str:
    out = ""
    for p in sc.posts[:2]:
        if p.anchor and p.title is not None:
            out += (
                f'<li><a href="#{p.anchor}"><time datetime="{iso(sc, p, p.when, p.fold)}">'
                f"{local_text(sc, p.when, p.fold)}</time> {html.escape(HEADLINES[sc.lang][p.title])}</a></li>"
            )
    return out


def render_bbc(sc: Scenario) -> str:
    items = ""
    for p in sc.posts:
        title, paras = post_text(sc, p)
        head = f'<h3 class="lx-stream-post__header-title">{html.escape(title)}</h3>' if title else ""
        items += (
            f'<li class="lx-stream__post-container"><article id="{p.anchor}" class="lx-stream-post">'
            f'<header class="lx-stream-post__header"><time class="lx-stream-post__meta-time">'
            f'<span class="qa-post-auto-meta">{local_text(sc, p.when, p.fold)}</span></time>{head}</header>'
            f'<div class="lx-stream-post-body">{paras_html(paras)}</div>'
            f'<footer class="lx-stream-post__footer"><button class="share">Share</button></footer></article></li>\n'
        )
    return page(sc, "", f'<div class="lx-stream"><ol class="lx-stream__feed">{items}</ol></div>')


def render_microdata(sc: Scenario) -> str:
    items = ""
    for p in sc.posts:
        title, paras = post_text(sc, p)
        head = f'<h3 itemprop="headline">{html.escape(title)}</h3>' if title else ""
        ident = f' id="{p.anchor}"' if p.anchor else ""
        mod = ""
        if p.updated:
            mod = (
                f'<p class="upd">{UPDATED[sc.lang]}: <time itemprop="dateModified" '
                f'datetime="{iso(sc, p, p.updated, p.updated_fold)}">{local_text(sc, p.updated, p.updated_fold)}</time></p>'
            )
        url = f'<link itemprop="url" href="{sc.page_url()}#{p.anchor}">' if p.anchor else ""
        items += (
            f'<div{ident} class="entry" itemprop="liveBlogUpdate" itemscope itemtype="https://schema.org/BlogPosting">'
            f'{url}<time itemprop="datePublished" datetime="{iso(sc, p, p.when, p.fold)}">'
            f"{local_text(sc, p.when, p.fold)}</time>{head}"
            f'<div itemprop="articleBody">{paras_html(paras)}</div>{mod}</div>\n'
        )
    body = f'<div itemscope itemtype="https://schema.org/LiveBlogPosting"><div class="stream">{items}</div></div>'
    return page(sc, "", body)


def render_generic(sc: Scenario) -> str:
    tag, cls = ("li", "news-row") if sc.form == "list" else ("div", "update-card")
    items = ""
    for p in sc.posts:
        title, paras = post_text(sc, p)
        head = f"<h4>{html.escape(title)}</h4>" if title else ""
        ident = f' id="{p.anchor}"' if p.anchor else ""
        if sc.form == "clockonly":
            t = f"<time>{local_text(sc, p.when, p.fold)}</time>"
        else:
            t = f'<time datetime="{iso(sc, p, p.when, p.fold)}">{local_text(sc, p.when, p.fold)}</time>'
        items += (
            f'<{tag}{ident} class="{cls}"><div class="meta">{t}</div>{head}{paras_html(paras)}'
            f'<span class="share">Share</span></{tag}>\n'
        )
    wrap = "ul" if tag == "li" else "section"
    return page(sc, "", f'<{wrap} class="updates">{items}</{wrap}>')


def render_article(sc: Scenario) -> str:
    ld = article_ld(sc, "NewsArticle")
    script = ""
    if sc.form != "og":
        script = f'<script type="application/ld+json">{json.dumps({"@context": "https://schema.org", **ld}, ensure_ascii=False)}</script>'
    else:
        script = ""
        if sc.published:
            script += f'<meta property="article:published_time" content="{ld["datePublished"]}">'
        if sc.modified:
            script += f'<meta property="article:modified_time" content="{ld["dateModified"]}">'
    paras = [PARAGRAPHS[sc.lang][i] for i in sc.article_paras]
    names = AUTHORS[sc.lang][sc.authors]
    body_html = paras_html(paras[:2]) + (
        f'<figure><img src="a.jpg"><figcaption>{html.escape(CAPTIONS[sc.lang])}</figcaption></figure>'
        '<div class="newsletter-signup"><p>Sign up for our morning briefing and get the news first.</p></div>'
        + paras_html(paras[2:])
    )
    title = HEADLINES[sc.lang][sc.title or 0]
    return f"""<!DOCTYPE html>
<html lang="{sc.lang}"><head><meta charset="utf-8"><title>{html.escape(title)} | Example News</title>
<link rel="canonical" href="{sc.page_url()}"><meta property="og:title" content="{html.escape(title)}">{script}</head>
<body><header><nav><a href="/">Home</a><a href="/world">World</a><a href="/business">Business</a></nav></header>
<main><article><h1>{html.escape(title)}</h1>
<p class="byline">By {html.escape(" and ".join(names))}</p>
<div class="article-body">{body_html}</div>
<div class="share-buttons"><a href="#">Share on X</a><a href="#">Email</a></div>
</article>
<section class="related"><h2>Related stories</h2><ul><li><a href="/r1">A related story headline that is a teaser</a></li>
<li><a href="/r2">Another related teaser for readers</a></li></ul></section></main>
<footer>Example News Ltd. Registered in somewhere.</footer></body></html>
"""


RENDER = {
    "text": render_text,
    "jsonld": render_jsonld,
    "guardian": render_guardian,
    "bbc": render_bbc,
    "microdata": render_microdata,
    "generic": render_generic,
    "article": render_article,
}


def meta(sc: Scenario) -> dict[str, Any]:
    ctype = "text/plain; charset=utf-8" if sc.shape == "text" else "text/html; charset=utf-8"
    return {"url": sc.page_url(), "timezone": sc.tz, "fetched_at": sc.fetched, "content_type": ctype}


def write(scenarios: list[Scenario], pairs: list[dict[str, Any]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    for sc in scenarios:
        ext = "txt" if sc.shape == "text" else "html"
        (OUT / f"{sc.name}.{ext}").write_text(RENDER[sc.shape](sc), encoding="utf-8")
        (OUT / f"{sc.name}.meta.json").write_text(json.dumps(meta(sc), indent=1) + "\n", encoding="utf-8")
        exp = json.dumps(expected(sc), indent=1, ensure_ascii=False)
        (OUT / f"{sc.name}.expected.json").write_text(exp + "\n", encoding="utf-8")
    (OUT / "pairs.json").write_text(json.dumps(pairs, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    from scenarios import PAIRS, SCENARIOS

    write(SCENARIOS, PAIRS)
    print(f"wrote {len(SCENARIOS)} pages to {OUT}")
