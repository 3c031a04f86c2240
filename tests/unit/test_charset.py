"""Decoding: legacy encodings must come out right, declared or not, and lies must not win."""

from __future__ import annotations

import codecs

import pytest

from consumers.parse.charset import as_utf8_xml, declared_charset, decode

RU = "Новости дня: в городе прошёл сильный дождь, и улицы затопило. Жители просят помощи."
UK = "Новини дня: у місті пройшов сильний дощ, і вулиці затопило. Мешканці просять допомоги."
ZH = "新闻标题：今天的天气很好，我们去公园散步吧。北京市发布了新的交通规定，市民需要注意。"
FR = "Café crème à la française, déjà vu. Ça coûte très cher à Noël."


def xml(text: str, encoding: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else '<?xml version="1.0"?>'
    return f"{decl}\n<rss><channel><title>{text}</title></channel></rss>"


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_bom_wins_over_everything(bom: bytes, codec: str) -> None:
    body = bom + xml(UK, "windows-1251").encode(codec)
    result = decode(body, "text/xml; charset=iso-8859-1")
    assert result.charset == codec
    assert UK in result.text
    assert not result.text.startswith("\ufeff")


def test_bomless_utf16_is_recognised_by_its_nul_layout() -> None:
    result = decode(xml(UK, None).encode("utf-16-le"))
    assert result.charset == "utf-16-le"
    assert UK in result.text


@pytest.mark.parametrize(
    ("text", "codec", "expected"),
    [
        (RU, "windows-1251", "cp1251"),
        (RU, "koi8-r", "koi8-r"),
        (FR, "iso-8859-1", "cp1252"),
        (ZH, "gb2312", "gb18030"),
    ],
    ids=["cp1251", "koi8-r", "latin-1", "gb2312"],
)
def test_content_type_charset(text: str, codec: str, expected: str) -> None:
    result = decode(xml(text, None).encode(codec), f"application/rss+xml; charset={codec.upper()}")
    assert (result.text.count(text), result.charset) == (1, expected)


@pytest.mark.parametrize(
    ("text", "codec"),
    [(RU, "windows-1251"), (UK, "windows-1251"), (RU, "KOI8-R"), (FR, "ISO-8859-1"), (ZH, "GB2312")],
    ids=["ru-cp1251", "uk-cp1251", "ru-koi8", "fr-latin1", "zh-gb2312"],
)
def test_xml_declaration(text: str, codec: str) -> None:
    assert text in decode(xml(text, codec).encode(codec)).text


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="windows-1251">',
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
    ],
)
def test_html_meta_charset(meta: str) -> None:
    html = f"<!doctype html><html><head>{meta}<title>x</title></head><body><p>{RU}</p></body></html>"
    result = decode(html.encode("windows-1251"))
    assert result.charset == "cp1251"
    assert RU in result.text


@pytest.mark.parametrize(
    ("text", "codec"),
    [(RU, "windows-1251"), (RU, "koi8-r"), (ZH, "gb2312"), (UK, "windows-1251")],
    ids=["ru-cp1251", "ru-koi8", "zh-gb2312", "uk-cp1251"],
)
def test_undeclared_legacy_encodings_are_detected(text: str, codec: str) -> None:
    body = f"<rss><channel><title>{text}</title><description>{text}</description></channel></rss>"
    assert text in decode(body.encode(codec)).text


def test_utf8_bytes_under_a_single_byte_declaration_are_read_as_utf8() -> None:
    body = xml(UK, "ISO-8859-1").encode("utf-8")
    assert decode(body).text.count(UK) == 1
    assert decode(body, "text/xml; charset=windows-1251").charset == "utf-8"


def test_declared_utf8_over_windows_1252_falls_back_to_detection() -> None:
    body = xml(FR + " Prix: 5 €.", "utf-8").encode("cp1252")
    assert "Prix: 5 €." in decode(body).text


def test_unknown_labels_are_ignored() -> None:
    assert UK in decode(xml(UK, "no-such-charset").encode("utf-8"), "text/xml; charset=bogus").text


def test_declared_charset_reader() -> None:
    assert declared_charset(b"<?xml version=\"1.0\" encoding='KOI8-R'?><rss/>") == "KOI8-R"
    assert declared_charset(b"<html><head><meta charset=utf-8></head></html>") == "utf-8"
    assert declared_charset(b"<rss/>") is None


def test_as_utf8_xml_rewrites_the_prolog() -> None:
    text = decode(xml(RU, "windows-1251").encode("windows-1251")).text
    out = as_utf8_xml(text)
    assert out.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert RU.encode("utf-8") in out
