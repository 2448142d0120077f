"""Markdown: the text a reader of the rendered page sees, parsed by markdown-it-py (CommonMark, with GFM tables
and strikethrough), not by regexes. Opt-in (``Settings.markdown_rendered``, ``RAG_MARKDOWN_RENDERED``): by default
a ``.md`` file is indexed as ``Path.read_text`` reads it, like a ``.txt`` file, and offsets index the file.

Emphasis marks, link targets, image URLs, raw HTML tags and escapes go; link texts, image alt texts, inline
code and code blocks stay. Each block (heading, paragraph, code block) is followed by a blank line, list items
and table rows by a line break; a table row's cells are joined by `` | `` (as Word tables are). A line the
source merely wrapped (a soft break) is a space, so a sentence wrapped over lines reads as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.extract import Unreadable
from rag.extract.plain import decode, universal_newlines

_NEW_BLOCK = "\n\n"


def _inline(children: Sequence[Any] | None) -> str:
    """The visible text of an inline token's children."""
    out: list[str] = []
    for tok in children or ():
        kind = tok.type
        if kind in ("text", "code_inline", "text_special"):
            out.append(tok.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "image":
            out.append(_inline(tok.children) or tok.content)
        # link/emphasis/strikethrough open and close tokens and html_inline show nothing themselves
    return "".join(out)


def render_text(source: str) -> str:
    """The visible text of Markdown ``source``."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    parts: list[str] = []
    cells: list[str] | None = None  # the current table row's cells

    def end_block(sep: str) -> None:
        """End what was written with ``sep`` (a line break, or a blank line), once."""
        if not parts or parts[-1].endswith(sep):
            return
        parts.append("\n" if sep == _NEW_BLOCK and parts[-1].endswith("\n") else sep)

    for tok in md.parse(source):
        kind = tok.type
        if kind == "inline":
            text = _inline(tok.children).strip()
            if cells is not None:
                cells.append(text)
            elif text:
                parts.append(text)
        elif kind == "heading_close":
            end_block(_NEW_BLOCK)
        elif kind == "paragraph_close":
            end_block("\n" if tok.hidden else _NEW_BLOCK)  # hidden: a paragraph of a tight list item
        elif kind == "list_item_close":
            end_block("\n")
        elif kind in ("bullet_list_close", "ordered_list_close", "table_close", "blockquote_close"):
            end_block(_NEW_BLOCK)
        elif kind in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            if code:
                parts.append(code)
                end_block(_NEW_BLOCK)
        elif kind == "tr_open":
            cells = []
        elif kind == "tr_close" and cells is not None:
            row = " | ".join(cells)
            cells = None
            if row.strip(" |"):
                parts.append(row)
                end_block("\n")
        # html_block, hr and the other open/close tokens show nothing
    return "".join(parts).strip() + "\n"


def extract_markdown(data: bytes) -> tuple[str, str | None]:
    """A Markdown file's indexed text and its encoding when not UTF-8."""
    source, encoding = decode(data)
    text = render_text(universal_newlines(source))
    if not text.strip():
        raise Unreadable("no visible text (only Markdown markup)", "skipped")
    return text, encoding
