"""Turning a file's bytes into the text that is indexed, cited and served by ``GET /documents/{id}``.

One function per format, chosen by file extension (:data:`FORMATS`):

- ``text`` (``.txt``, ``.md``): UTF-8 as ``Path.read_text`` reads it; UTF-16/32 with a byte order mark and
  legacy 8-bit encodings (cp1252, latin-1, ...) are decoded too, the latter found by charset-normalizer;
- ``markdown`` (``.md`` only with ``markdown_rendered``, setting ``RAG_MARKDOWN_RENDERED``; markdown-it-py):
  the text the rendered page shows, decoded as ``text``;
- ``pdf`` (pypdfium2): the text layer, page by page, with each page's start offset recorded for citations;
- ``html`` (lxml): the visible main text, without scripts, menus, banners, headers and footers;
- ``docx`` (python-docx): paragraphs, headings and table cells in document order.

Every extractor raises :class:`Unreadable` with a reason a user can act on, never anything else; the
corpus scan turns it into one warning line and goes on. Libraries are imported only when a file of their
format is read.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Format = Literal["text", "markdown", "pdf", "html", "docx"]
FORMATS: dict[str, Format] = {
    ".txt": "text",
    ".md": "text",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
}
# The formats that differ with ``markdown_rendered`` (Settings.markdown_rendered): a different format, so a
# different extractor id, so switching the setting re-extracts these files.
RENDERED: dict[str, Format] = {".md": "markdown"}
# Bump when an extractor's output changes, so that `rag index` re-extracts files it has already read.
EXTRACT_VERSION = 1


@dataclass(frozen=True)
class Extracted:
    text: str
    extractor: str  # which code made ``text`` (format, library and version): a change re-extracts
    encoding: str | None = None  # of a text file, when it was not UTF-8
    title: str | None = None  # an HTML page's <title>
    pages: tuple[int, ...] = ()  # offset in ``text`` where each page starts (PDF); empty when not paged


class Unreadable(Exception):
    """The file cannot be indexed; ``reason`` says why (and how to fix it when it can be fixed).

    ``kind`` is ``skipped`` for files that are readable but hold no text we can index (a scanned or
    encrypted PDF, a binary file) and ``failed`` for files that are broken or cannot be read.
    """

    def __init__(self, reason: str, kind: Literal["skipped", "failed"] = "failed") -> None:
        super().__init__(reason)
        self.reason, self.kind = reason, kind


def format_of(name: str, markdown_rendered: bool = False) -> Format | None:
    """The format of a file name by its extension (case-insensitive), or None when it is not read.

    A ``.md`` file is ``text`` (read as a ``.txt`` file is), or ``markdown`` with ``markdown_rendered``."""
    dot = name.rfind(".")
    if dot < 0:
        return None
    suffix = name[dot:].lower()
    if markdown_rendered and suffix in RENDERED:
        return RENDERED[suffix]
    return FORMATS.get(suffix)


@functools.cache
def extractor_id(fmt: Format) -> str:
    """The extractor's name and version, recorded in the manifest (a new one re-extracts the file).

    Cached: it is asked once per file scanned, and the installed versions do not change while running."""
    from importlib.metadata import PackageNotFoundError, version

    package = {"text": None, "markdown": "markdown-it-py", "pdf": "pypdfium2", "html": "lxml", "docx": "python-docx"}[
        fmt
    ]
    if package is None:
        return f"text/{EXTRACT_VERSION}"
    try:
        return f"{fmt}/{EXTRACT_VERSION} {package} {version(package)}"
    except PackageNotFoundError:
        return f"{fmt}/{EXTRACT_VERSION} {package}"


def extract(data: bytes, fmt: Format) -> Extracted:
    """The indexed text of a file of format ``fmt`` holding ``data``; raises :class:`Unreadable`."""
    if not data.strip():
        raise Unreadable("empty file", "skipped")
    try:
        if fmt == "text":
            from rag.extract.plain import extract_text

            text, encoding = extract_text(data)
            return Extracted(text, extractor_id(fmt), encoding=encoding)
        if fmt == "markdown":
            from rag.extract.markdown import extract_markdown

            text, encoding = extract_markdown(data)
            return Extracted(text, extractor_id(fmt), encoding=encoding)
        if fmt == "pdf":
            from rag.extract.pdf import extract_pdf

            text, pages = extract_pdf(data)
            return Extracted(text, extractor_id(fmt), pages=pages)
        if fmt == "html":
            from rag.extract.html import extract_html

            text, title = extract_html(data)
            return Extracted(text, extractor_id(fmt), title=title)
        from rag.extract.docx import extract_docx

        return Extracted(extract_docx(data), extractor_id(fmt))
    except Unreadable:
        raise
    except ImportError as exc:  # a broken install: say which package is missing
        raise Unreadable(f"cannot read {fmt.upper()} files: {exc}; reinstall rag (pip install -e .)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file may raise anything inside a parser
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        name = exc.__class__.__name__ + (f": {detail}" if detail else "")
        raise Unreadable(f"damaged or not really a {fmt.upper()} file ({name})") from None


def page_at(pages: Sequence[int], offset: int) -> int | None:
    """The 1-based page holding character ``offset``, given each page's start offset; None when not paged."""
    if not pages:
        return None
    return max(1, bisect.bisect_right(pages, offset))
