"""Word (.docx): paragraphs, headings and table cells in document order, with python-docx (MIT licence).

Each paragraph and heading becomes one line, and so does each table row, its cells joined by " | " (so
a figure stays beside its label); a cell merged across columns is read once; a table inside a cell is
read in place. Headers, footers, comments and footnotes are not read.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from rag.extract import Unreadable


def _lines(container: Any) -> Iterator[str]:
    """The text lines of a document body or a table cell, in order."""
    from docx.table import Table

    for block in container.iter_inner_content():
        if isinstance(block, Table):
            yield from _table_lines(block)
        else:
            yield block.text


def _table_lines(table: Any) -> Iterator[str]:
    seen: dict[int, Any] = {}  # id -> element, held so that lxml keeps handing out the same proxy object
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell appears once per grid column it spans
                continue
            seen[id(cell._tc)] = cell._tc
            cells.append(" ".join(line for line in _lines(cell) if line.strip()))
        yield " | ".join(c for c in cells if c)


def extract_docx(data: bytes) -> str:
    """The text of a .docx file; raises :class:`Unreadable`."""
    import zipfile

    import docx

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise Unreadable("not a Word document (a .docx file is a zip archive; this is not one)")
    try:
        document = docx.Document(io.BytesIO(data))
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"not a Word document (a zip archive without a Word body: {exc.__class__.__name__})") from None
    except Exception as exc:  # python-docx's PackageNotFoundError and friends
        raise Unreadable(f"not a Word document ({exc.__class__.__name__})") from None
    lines = [" ".join(line.split()) for line in _lines(document)]
    text = "\n".join(line for line in lines if line)
    if not text:
        raise Unreadable("no text (an empty Word document)", "skipped")
    return text
