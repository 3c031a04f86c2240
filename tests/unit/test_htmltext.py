"""html_to_text: what subscribers read must be clean text, whatever markup the publisher sent."""

from __future__ import annotations

import pytest

from consumers.parse.htmltext import html_to_text, normalize_text


def test_blocks_become_paragraphs_and_entities_are_unescaped() -> None:
    html = "<p>Rain &amp; wind&nbsp;tonight</p><div>Roads <b>closed</b>.</div><h2>Later</h2>"
    assert html_to_text(html) == "Rain & wind tonight\n\nRoads closed.\n\nLater"


def test_line_breaks_stay_inside_a_paragraph() -> None:
    assert html_to_text("<p>First line<br>second line<br/></p>") == "First line\nsecond line"


@pytest.mark.parametrize(
    "furniture",
    [
        "<script>var secret = 1;</script>",
        "<style>p { color: red }</style>",
        "<nav><a href='/'>Home</a></nav>",
        "<aside>Most read: five stories</aside>",
        "<figure><img src='a.jpg'><figcaption>Photo: Agency</figcaption></figure>",
        "<noscript>Enable JavaScript</noscript>",
        "<div class='social-share'><a>Share on X</a></div>",
        "<div id='newsletter-signup'>Get our daily email</div>",
        "<div class='ad-slot'><div class='ad'>Buy now</div></div>",
        "<p>Advertisement</p>",
        "<p>Share this article</p>",
        "<p>Subscribe to our newsletter for more.</p>",
        "<p>The post <a>Ferry news</a> appeared first on <a>Gazette</a>.</p>",
        "<div hidden>invisible</div>",
        "<form><input value='email'><button>Subscribe</button></form>",
    ],
)
def test_furniture_is_dropped(furniture: str) -> None:
    assert html_to_text(f"<p>Before.</p>{furniture}<p>After.</p>") == "Before.\n\nAfter."


def test_class_names_that_merely_contain_ad_are_kept() -> None:
    html = "<div class='header'>Head</div><div class='shadow-box'>Box</div><div class='more-text'>Text</div>"
    assert html_to_text(html) == "Head\n\nBox\n\nText"


def test_whole_document_drops_head_and_title() -> None:
    html = "<!doctype html><html><head><title>Site</title></head><body><p>Only this.</p></body></html>"
    assert html_to_text(html) == "Only this."


def test_whitespace_and_odd_spaces_are_normalised() -> None:
    html = "<p>  A\u00a0\u202fwide\n\t gap\u200b here  </p>\n\n\n<p>\u00a0</p>"
    assert html_to_text(html) == "A wide gap here"


def test_lists_and_tables_read_as_text() -> None:
    html = "<ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table>"
    assert html_to_text(html) == "one\n\ntwo\n\na b"


def test_cyrillic_text_is_kept_intact() -> None:
    assert html_to_text("<p>Київ, 4 листопада 2024 — «Новини»</p>") == "Київ, 4 листопада 2024 — «Новини»"


def test_plain_text_keeps_its_paragraphs() -> None:
    assert html_to_text("First &amp; only\nline\n\nSecond para") == "First & only\nline\n\nSecond para"


def test_broken_markup_does_not_raise() -> None:
    assert html_to_text("<p>Unclosed <b>bold <div>inner</p></span>tail") == "Unclosed bold\n\ninner\n\ntail"


def test_empty_inputs() -> None:
    assert html_to_text("") == ""
    assert html_to_text("<div><script>x</script></div>") == ""


def test_normalize_text_handles_crlf_and_blank_runs() -> None:
    assert normalize_text("a\r\n\r\n\r\nb  c\u00a0d\r\ne") == "a\n\nb c d\ne"
