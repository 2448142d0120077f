"""The extractors, one format at a time, on small real files made here (tests/docfiles.py)."""

from __future__ import annotations

import io
import zipfile

import pytest

from rag.config import Settings
from rag.extract import Unreadable, extract, format_of, page_at
from rag.extract.pdf import join_pages, unwrap
from tests.docfiles import NEWS_HTML, encrypt_pdf, make_docx, make_pdf

PAGE_1 = [
    "Minerals alliance talks",
    "The ministers met in Washington on Tuesday to discuss the critical minerals alli-",
    "ance, its stockpiles and a shared price floor for rare earth oxides next year.",
]
PAGE_2 = ["Opposition", "The gallium levy was opposed by the Japanese trade ministry, sources said."]


def test_format_is_chosen_by_extension_case_insensitively():
    assert [format_of(n) for n in ("a.TXT", "b.md", "c.Pdf", "d.htm", "e.html", "f.docx", "g.doc", "h")] == [
        "text",
        "text",  # a .md file is read as a .txt file is, unless markdown_rendered (RAG_MARKDOWN_RENDERED)
        "pdf",
        "html",
        "html",
        "docx",
        None,
        None,
    ]


def test_pdf_pages_are_read_in_order_with_their_start_offsets():
    got = extract(make_pdf([PAGE_1, PAGE_2]), "pdf")
    assert got.extractor.startswith("pdf/1 pypdfium2 ")
    assert len(got.pages) == 2 and got.pages[0] == 0
    page_two = got.text[got.pages[1] :]
    assert page_two.startswith("Opposition\nThe gallium levy was opposed by the Japanese trade ministry")
    assert "critical minerals alliance, its stockpiles" in got.text  # wrapped line and hyphenation joined
    pos = got.text.index("Japanese")
    assert page_at(got.pages, pos) == 2 and page_at(got.pages, 0) == 1 and page_at((), 5) is None


def test_unwrap_joins_wrapped_lines_and_keeps_short_lines_apart():
    lines = [
        "Heading",
        "A long line of running text that the page wrapped at its right",
        "margin and which goes on here.",
        "",
        "A new paragraph after a blank line.",
    ]
    assert unwrap(lines, set()) == [
        "Heading",
        "A long line of running text that the page wrapped at its right margin and which goes on here.",
        "A new paragraph after a blank line.",
    ]


def test_hyphen_at_a_line_end_is_kept_when_the_document_writes_the_word_with_one():
    wrapped = "The delegates agreed on a well-known plan and on a long line that wraps at well-"
    text, _ = join_pages([f"{wrapped}\nknown points of the text."])
    assert "well-known points" in text  # "well-known" occurs inside a line: the hyphen is the author's
    text, _ = join_pages(["A long line of running text that breaks the word mini-\nsters across two lines."])
    assert "word ministers across" in text


def test_scanned_and_encrypted_pdfs_are_skipped_with_the_reason():
    with pytest.raises(Unreadable) as exc:
        extract(make_pdf([["x"], ["y"]], text_layer=False), "pdf")
    assert exc.value.kind == "skipped" and "no text layer in its 2 pages" in exc.value.reason
    assert "OCR" in exc.value.reason
    with pytest.raises(Unreadable) as exc:
        extract(encrypt_pdf(make_pdf([PAGE_1])), "pdf")
    assert exc.value.kind == "skipped" and exc.value.reason.startswith("encrypted PDF")


@pytest.mark.parametrize("data", [make_pdf([PAGE_1])[:200], b"%PDF-1.4\nnot really", b"hello, not a pdf"])
def test_broken_pdfs_fail_with_one_reason(data):
    with pytest.raises(Unreadable) as exc:
        extract(data, "pdf")
    assert exc.value.kind == "failed" and "PDF" in exc.value.reason and "\n" not in exc.value.reason


def test_html_keeps_the_article_and_drops_menus_scripts_banners_and_footers():
    got = extract(NEWS_HTML.encode("utf-8"), "html")
    assert got.title == "Gallium refinery opens in Perth"
    assert got.text == (
        "Gallium refinery opens in Perth\n"
        "The new gallium refinery in Perth was opened by Governor Chris Dawson on Monday, officials said.\n"
        "It will process 50 tonnes a year & employ 120 people.\n"
        "Exports start in March."
    )


def test_html_without_article_uses_the_body_minus_site_header_nav_and_footer():
    page = (
        "<html><head><title>Notes</title></head><body><header>Site name</header><nav>Home | About</nav>"
        "<div class='cookie-consent'>Accept cookies</div><h2>Meeting</h2><p>Ministers met&#160;in <b>Paris</b>."
        "</p><ul><li>First point</li><li>Second point</li></ul><footer>© 2026</footer></body></html>"
    )
    got = extract(page.encode("utf-8"), "html")
    assert got.text == "Notes\nMeeting\nMinisters met in Paris.\nFirst point\nSecond point"


def test_html_in_a_declared_legacy_charset_is_decoded():
    page = '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body><p>Cr\xe8me br\xfbl\xe9e.</p></body></html>'
    got = extract(page.encode("cp1252"), "html")
    assert got.text == "Café\nCrème brûlée."


def test_docx_reads_headings_paragraphs_and_table_rows_in_order(tmp_path):
    got = extract(make_docx(tmp_path / "r.docx").read_bytes(), "docx")
    assert got.text == (
        "Quarterly minerals report\n"
        "Rare earth output rose in the third quarter.\n"
        "Mineral | Tonnes\nGallium | 310\nGermanium | 95\n"
        "The Germanium figure was revised by the auditor Helen Park."
    )


def test_a_zip_that_is_not_a_word_file_fails_with_the_reason():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "just a zip")
    for data in (buf.getvalue(), b"plain bytes, not a zip"):
        with pytest.raises(Unreadable) as exc:
            extract(data, "docx")
        assert exc.value.kind == "failed" and exc.value.reason.startswith("not a Word document")


@pytest.mark.parametrize(
    ("data", "text", "encoding"),
    [
        (
            "Café crème brûlée — déjà vu in Zürich, naïve façade.".encode("cp1252"),
            "Café crème brûlée — déjà vu in Zürich, naïve façade.",
            "cp1252",
        ),
        (
            "Gallium is refined in Perth.\r\nOn Monday.".encode("utf-16"),
            "Gallium is refined in Perth.\nOn Monday.",
            "utf-16",
        ),
        ("Plain\r\nUTF-8 ✓\rtext".encode(), "Plain\nUTF-8 ✓\ntext", None),
        ("\ufeffUTF-8 with a BOM".encode(), "\ufeffUTF-8 with a BOM", None),  # kept, as Path.read_text keeps it
    ],
)
def test_text_encodings(data, text, encoding):
    got = extract(data, "text")
    assert (got.text, got.encoding) == (text, encoding)


@pytest.mark.parametrize(
    "data", ["Gallium is refined.".encode("utf-16-be"), b"\x89PNG\r\n\x1a\n\x00\x00", bytes(range(1, 32)) * 9]
)
def test_binary_files_are_skipped(data):
    with pytest.raises(Unreadable) as exc:
        extract(data, "text")
    assert exc.value.kind == "skipped" and "binary" in exc.value.reason


def test_empty_files_are_skipped_whatever_their_format():
    for fmt in ("text", "pdf", "html", "docx"):
        with pytest.raises(Unreadable) as exc:
            extract(b"  \n", fmt)
        assert exc.value.kind == "skipped" and exc.value.reason == "empty file"


def test_hyphens_pdfium_marks_as_line_breaks_are_resolved_like_line_end_hyphens():
    from rag.extract.pdf import _soft_hyphens

    assert _soft_hyphens("the mini\ufffesters met", set()) == "the ministers met"
    assert _soft_hyphens("a well\ufffe\nknown plan", {"well-known"}) == "a well-known plan"
    assert _soft_hyphens("the UN\ufffeBacked plan", set()) == "the UN-Backed plan"  # capital after: a real hyphen


MARKDOWN = """# Notes on **lithium**

The *auction* closes on **Friday**; contact [Jane Doe](mailto:jane@example.com)
for details, or see ![the map](map.png). A literal \\*star\\* stays.

- first item
- second `code` item

| metal | price |
|---|---|
| lithium | 42 |

```
x = 1
```

<div class="note">raw html</div>
"""


def test_markdown_rendered_is_opt_in_and_has_its_own_extractor_id():
    assert Settings(_env_file=None).markdown_rendered is False
    assert [format_of(n, markdown_rendered=True) for n in ("b.md", "B.MD", "a.txt", "c.pdf")] == [
        "markdown",
        "markdown",
        "text",
        "pdf",
    ]
    raw, rendered = extract(MARKDOWN.encode(), format_of("n.md")), extract(MARKDOWN.encode(), "markdown")
    assert raw.text == MARKDOWN and raw.extractor == "text/1"  # as Path.read_text reads it
    assert rendered.extractor != raw.extractor  # so switching the setting re-extracts the file


def test_markdown_is_indexed_as_the_rendered_page_reads():
    got = extract(MARKDOWN.encode(), "markdown")
    assert got.extractor.startswith("markdown/1 markdown-it-py ")
    assert got.text == (
        "Notes on lithium\n\n"
        "The auction closes on Friday; contact Jane Doe for details, or see the map. A literal *star* stays.\n\n"
        "first item\nsecond code item\n\n"
        "metal | price\nlithium | 42\n\n"
        "x = 1\n"
    )


def test_markdown_in_a_legacy_encoding_and_markdown_without_text():
    got = extract("# Café\n\nThe **café** opened in 1990.\n".encode("cp1252"), "markdown")
    assert got.text == "Café\n\nThe café opened in 1990.\n" and got.encoding == "cp1252"
    with pytest.raises(Unreadable, match="no visible text") as exc:
        extract(b"![](image.png)\n\n---\n", "markdown")
    assert exc.value.kind == "skipped"
