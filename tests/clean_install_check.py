"""Check that a plain ``pip install .`` (no test extras) parses article pages with trafilatura.

Why: trafilatura once failed to import after a plain install (jusText needs
``lxml_html_clean``, which lxml >= 5.2 split out) and only the test extras happened to pull
it in, so CI stayed green while a production install ran a quieter fallback.  The article
module now imports trafilatura unconditionally; this script proves, in an environment with
only the declared dependencies, that the import works and that ``parse_document`` really
returns trafilatura's body.

The page is built here: a story plus an author-bio box inside ``<main>``.  The main-region
reader (the path a page with too many tags takes) keeps the bio; trafilatura drops it.  The
script first checks that the page still tells the two apart, then that the parsed item has
the story and not the bio.

    python tests/clean_install_check.py     # from a venv made with a plain `pip install .`

Run by ``.ci/run`` before the test extras are installed; it needs nothing but the package.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

_STARTED = time.perf_counter()

# No fallback anywhere: a missing declared dependency fails here, loudly.
import trafilatura  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

import consumers.parse.article as article  # noqa: E402
from consumers.parse import RawDocument, parse_document  # noqa: E402

TITLE = "Council approves tram line"
STORY = [
    f"Paragraph {i} of the report: the council voted on the new tram line after a long debate "
    "about its cost, its route through the old town and the years of building work it would bring."
    for i in range(1, 6)
]
BIO = (
    "Jane Roe has covered city hall for the paper since 2009 and before that wrote about "
    "schools and the courts."
)
PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{TITLE} | Example Gazette</title>
<meta property="og:title" content="{TITLE}">
<meta property="og:site_name" content="Example Gazette">
<meta property="article:published_time" content="2024-11-04T08:36:00Z">
<link rel="canonical" href="https://gazette.example/city/tram-line">
</head><body><main>
<h1>{TITLE}</h1>
<div class="story">{"".join(f"<p>{p}</p>" for p in STORY)}</div>
<div class="author-bio"><p>{BIO}</p></div>
</main></body></html>
"""


def main() -> int:
    failures: list[str] = []
    if article.trafilatura is not trafilatura:
        failures.append("consumers.parse.article does not use the installed trafilatura")

    # The page must tell the two readers apart, or the check below proves nothing.
    tree = LexborHTMLParser(PAGE)
    fallback = article.intro_paragraphs(article.main_region(tree), TITLE, set())
    if BIO not in fallback:
        failures.append(
            "the check page no longer tells the readers apart: the main-region reader drops the bio"
        )

    doc = RawDocument(
        body=PAGE.encode("utf-8"),
        url="https://gazette.example/city/tram-line",
        feed_id="clean-install-check",
        fetched_at=datetime(2024, 11, 4, 9, 0, tzinfo=UTC),
        format="html",
    )
    items = parse_document(doc)
    kinds = [item.kind for item in items]
    if kinds != ["article"]:
        failures.append(f"expected one article item, got {kinds}")
    else:
        body = items[0].body
        if BIO in body:
            failures.append("the body has the author bio: the main-region reader ran, not trafilatura")
        if not all(p in body for p in STORY):
            failures.append("the body lacks story paragraphs")
        if items[0].title != TITLE:
            failures.append(f"title {items[0].title!r} != {TITLE!r}")

    elapsed = time.perf_counter() - _STARTED
    if failures:
        for failure in failures:
            print(f"clean-install check FAILED: {failure}", file=sys.stderr)
        return 1
    print(
        f"clean-install check: trafilatura {trafilatura.__version__} imported and used by "
        f"parse_document ({elapsed:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
