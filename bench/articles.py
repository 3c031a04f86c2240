"""Article pages: the project's extraction next to trafilatura alone, on the same pages, in one run.

Why: the parse stage wraps trafilatura with its own title, date and author choice and a
paragraph filter; this says whether that wrapping beats the best generic extractor on every
field, and catches a clean install that silently lost the extractor (empty or fallback
bodies show up as a drop in F1 and a count of empty pages).

Pages: the dev set kept outside the repository, real pages from the public
article-extraction benchmark (ground truth = article body only), read from ``--corpus PATH``
(default ``../shared/corpus/articles-dev/`` beside the checkout).  Each page goes through

* **project**: ``consumers.parse.parse_document`` as an HTML document (sniffing, decoding,
  safety screen, live/article split, trafilatura, title/date/author choice), and the
  ``article`` item is scored; a page that yields no article item scores as empty;
* **trafilatura**: ``trafilatura.extract(html, include_comments=False)`` (the benchmark's own
  settings, as its ``extractors/run_trafilatura.py`` calls it) for the body, and
  ``trafilatura.extract_metadata(html, default_url=url)`` for title, date and authors.

Body: the benchmark's metric, imported at run time from ``evaluate.upstream.py`` beside the
data (4-token shingles, per-page precision and recall averaged over pages, F1 from the means).

Title, date and authors have no ground truth in the set, so they are scored against facts
that neither extractor reads from the markup:

* **title**: token F1 against the URL's slug (pages whose URL has a slug of at least three
  words; accents folded, apostrophes dropped, numbers ignored).  A site name left in the
  title costs precision, a teaser or section name instead of the headline costs recall;
* **published**: the calendar date in the URL (``/2019/11/19/`` or ``2019-11-19``), on pages
  that have one, matched within a day (time zones); coverage is the share of all pages with
  a date at all;
* **authors**: share of pages with at least one author, among those the share whose every
  value looks like a person's name (2-5 words, each capitalised or from an uncased script,
  no digits, e-mail, URL, "By", or desk/agency words such as "Staff", "News", "Press"), and
  the product: share of all pages whose authors are present and all person-like.  This
  checks form, not identity: a wrong person's name passes.

Also counted: pages whose body came out empty, pages the project split into live posts
(every page of the set is an ordinary article), and wall time per page (the project's
figure includes sniffing, decoding and item building; trafilatura's its two calls).

    python bench/articles.py                    # the table
    python bench/articles.py --limit 40         # a quick look
    python bench/articles.py --show title       # per-page titles where the two differ
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import re
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from consumers.parse import ParseError, RawDocument, parse_document  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "articles-dev"
FETCHED_AT = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Output:
    body: str = ""
    title: str = ""
    published: date | None = None
    authors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    live_items: int = 0


def load_evaluator(corpus: Path) -> ModuleType:
    """The benchmark's own scoring module, loaded from the data folder (not copied here)."""
    path = corpus / "evaluate.upstream.py"
    spec = importlib.util.spec_from_file_location("articles_dev_evaluate", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_project(html: str, url: str) -> Output:
    out = Output()
    doc = RawDocument(
        body=html.encode("utf-8"),
        url=url,
        feed_id="bench",
        fetched_at=FETCHED_AT,
        content_type="text/html; charset=utf-8",
        format="html",
    )
    start = time.perf_counter()
    try:
        items = parse_document(doc)
    except ParseError as exc:
        out.seconds = time.perf_counter() - start
        out.error = exc.reason
        return out
    out.seconds = time.perf_counter() - start
    out.live_items = sum(item.kind == "live_update" for item in items)
    article = next((item for item in items if item.kind == "article"), None)
    if article is None:
        out.error = "no_article_item"
        return out
    out.body = article.body
    out.title = article.title
    out.published = article.published_at.date() if article.published_at else None
    out.authors = list(article.authors)
    return out


def run_trafilatura(html: str, url: str) -> Output:
    out = Output()
    start = time.perf_counter()
    out.body = trafilatura.extract(html, include_comments=False) or ""
    meta = trafilatura.extract_metadata(html, default_url=url)
    out.seconds = time.perf_counter() - start
    if meta is not None:
        out.title = meta.title or ""
        if meta.date:
            try:
                out.published = date.fromisoformat(meta.date[:10])
            except ValueError:
                out.published = None
        out.authors = [a.strip() for a in (meta.author or "").split(";") if a.strip()]
    return out


# --- the field references -------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+")
_URL_DATE = re.compile(r"/((?:19|20)\d\d)[/-](\d\d?)[/-](\d\d?)(?:/|-|$)")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"['’‘`]", "", text)


def words(text: str) -> list[str]:
    return _WORD.findall(_fold(text))


def slug_words(url: str) -> list[str]:
    """The longest hyphen/underscore-joined run of words in the URL's path."""
    path = re.sub(r"\.[a-z0-9]{2,5}$", "", url.split("?", 1)[0].split("#", 1)[0])
    best: list[str] = []
    for segment in path.split("/")[3:]:
        parts = [w for w in re.split(r"[-_+]", segment) if w and not w.isdigit()]
        found = [w for part in parts for w in words(part)]
        if len(parts) >= 3 and len(found) > len(best):
            best = found
    return best if len(best) >= 3 else []


def token_f1(reference: Sequence[str], predicted: Sequence[str]) -> float:
    ref, pred = set(reference), set(predicted)
    if not ref or not pred:
        return 0.0
    common = len(ref & pred)
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def url_date(url: str) -> date | None:
    match = _URL_DATE.search(url)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


_ORG_WORDS = frozenset(
    [
        "staff",
        "news",
        "desk",
        "editor",
        "editors",
        "editorial",
        "team",
        "reporter",
        "reporters",
        "agency",
        "press",
        "media",
        "wire",
        "wires",
        "service",
        "services",
        "online",
        "newsroom",
        "correspondent",
        "contributors",
        "contributor",
        "redaction",
        "redaccion",
        "redazione",
    ]
)
_PARTICLES = frozenset(
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
        "al",
        "el",
        "y",
        "e",
        "ten",
        "ter",
        "st",
    ]
)


def looks_like_person(name: str) -> bool:
    text = " ".join(name.split())
    if not text or any(ch.isdigit() for ch in text) or "@" in text or "://" in text or "www." in text:
        return False
    tokens = text.replace(",", " ").split()
    if not 2 <= len(tokens) <= 5 or tokens[0].lower() in ("by", "von", "par", "por", "di"):
        return False
    for token in tokens:
        bare = token.strip(".'’-()")
        if not bare:
            return False
        if bare.lower() in _ORG_WORDS:
            return False
        first = bare[0]
        cased = first.upper() != first.lower()
        if cased and not first.isupper() and bare.lower() not in _PARTICLES:
            return False
    return True


# --- the table -------------------------------------------------------------------------------


@dataclass(slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    title: float
    title_pages: int
    published: float
    published_pages: int
    published_cover: float
    authors_cover: float
    authors_clean: float
    authors_people: float
    empty: int
    split_live: int
    ms_per_page: float


def score(evaluator: ModuleType, truth: dict[str, Any], outputs: dict[str, Output]) -> Scores:
    tp_fp_fns = [
        evaluator.string_shingle_matching(true=truth[key].get("articleBody", ""), pred=outputs[key].body)
        for key in truth
    ]
    body = evaluator.metrics_from_tp_fp_fns(tp_fp_fns)
    titles = [
        token_f1(slug, words(outputs[key].title)) for key in truth if (slug := slug_words(truth[key]["url"]))
    ]
    dated = [(outputs[key].published, d) for key in truth if (d := url_date(truth[key]["url"])) is not None]
    published = [p is not None and abs((p - d).days) <= 1 for p, d in dated]
    with_authors = [o.authors for o in outputs.values() if o.authors]
    return Scores(
        precision=body["precision"],
        recall=body["recall"],
        f1=body["f1"],
        title=statistics.mean(titles) if titles else 0.0,
        title_pages=len(titles),
        published=statistics.mean(published) if published else 0.0,
        published_pages=len(published),
        published_cover=sum(o.published is not None for o in outputs.values()) / len(outputs),
        authors_cover=len(with_authors) / len(outputs),
        authors_clean=(
            sum(all(looks_like_person(a) for a in names) for names in with_authors) / len(with_authors)
            if with_authors
            else 0.0
        ),
        authors_people=sum(all(looks_like_person(a) for a in names) for names in with_authors) / len(outputs),
        empty=sum(not o.body.strip() for o in outputs.values()),
        split_live=sum(o.live_items > 0 for o in outputs.values()),
        ms_per_page=1000 * statistics.mean(o.seconds for o in outputs.values()),
    )


def print_table(columns: dict[str, Scores]) -> None:
    rows: list[tuple[str, Callable[[Scores], str]]] = [
        ("body precision", lambda s: f"{s.precision:.3f}"),
        ("body recall", lambda s: f"{s.recall:.3f}"),
        ("body F1", lambda s: f"{s.f1:.3f}"),
        ("title (slug token F1)", lambda s: f"{s.title:.3f} ({s.title_pages})"),
        ("published = URL date", lambda s: f"{s.published:.3f} ({s.published_pages})"),
        ("published present", lambda s: f"{s.published_cover:.3f}"),
        ("authors present", lambda s: f"{s.authors_cover:.3f}"),
        ("authors all person-like", lambda s: f"{s.authors_clean:.3f}"),
        ("pages: person authors", lambda s: f"{s.authors_people:.3f}"),
        ("pages with empty body", lambda s: f"{s.empty}"),
        ("pages split as live", lambda s: f"{s.split_live}"),
        ("ms per page", lambda s: f"{s.ms_per_page:.1f}"),
    ]
    names = list(columns)
    print(f"| {'':<26} | " + " | ".join(f"{n:>14}" for n in names) + " |")
    print(f"|{'-' * 28}|" + "|".join("-" * 16 for _ in names) + "|")
    for label, cell in rows:
        print(f"| {label:<26} | " + " | ".join(f"{cell(columns[n]):>14}" for n in names) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="score only the first N pages")
    parser.add_argument("--show", choices=("title", "authors", "published", "body"), help="per-page diffs")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    evaluator = load_evaluator(args.corpus)
    truth: dict[str, Any] = json.loads((args.corpus / "ground-truth.json").read_text("utf-8"))
    keys = sorted(truth)[: args.limit or None]
    truth = {key: truth[key] for key in keys}
    project: dict[str, Output] = {}
    alone: dict[str, Output] = {}
    for key in keys:
        html = gzip.decompress((args.corpus / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8")
        url = truth[key]["url"]
        project[key] = run_project(html, url)
        alone[key] = run_trafilatura(html, url)
        if args.show:
            _show(args.show, key, url, truth[key], project[key], alone[key], evaluator)

    print(f"$ python bench/articles.py{' --limit ' + str(args.limit) if args.limit else ''}")
    print(
        f"{len(keys)} pages of {args.corpus.name}; trafilatura {trafilatura.__version__} "
        f"(benchmark settings: extract(html, include_comments=False), extract_metadata)"
    )
    print_table({"project": score(evaluator, truth, project), "trafilatura": score(evaluator, truth, alone)})
    errors: dict[str, int] = {}
    for out in project.values():
        if out.error:
            errors[out.error] = errors.get(out.error, 0) + 1
    if errors:
        print(
            "project pages without an article item: "
            + ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        )
    return 0


def _show(
    what: str, key: str, url: str, truth: dict[str, Any], ours: Output, theirs: Output, ev: ModuleType
) -> None:
    if what == "title":
        slug = slug_words(url)
        mine, other = token_f1(slug, words(ours.title)), token_f1(slug, words(theirs.title))
        if ours.title != theirs.title or mine < 0.5:
            print(
                f"{key[:8]} {mine:.2f} {other:.2f} slug={' '.join(slug)!r}\n"
                f"   P {ours.title!r}\n   T {theirs.title!r}"
            )
    elif what == "authors":
        if ours.authors != theirs.authors or not all(looks_like_person(a) for a in ours.authors):
            print(f"{key[:8]} {url[:70]}\n   P {ours.authors!r}\n   T {theirs.authors!r}")
    elif what == "published":
        d = url_date(url)
        if d is not None and (ours.published is None or abs((ours.published - d).days) > 1):
            print(f"{key[:8]} url={d} P={ours.published} T={theirs.published} {url[:80]}")
    else:
        f1s = []
        for out in (ours, theirs):
            tp, fp, fn = ev.string_shingle_matching(true=truth.get("articleBody", ""), pred=out.body)
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        if f1s[0] + 0.05 < f1s[1]:
            print(f"{key[:8]} P {f1s[0]:.2f} T {f1s[1]:.2f} err={ours.error} {url[:80]}")


if __name__ == "__main__":
    raise SystemExit(main())
