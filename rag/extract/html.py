"""HTML: the visible main text of a saved web page, with lxml (BSD licence; python-docx needs it anyway).

- The main content is the page's single ``<article>``, else its ``<main>`` (or ``role="main"``), else ``<body>``.
- Dropped: scripts, styles, forms, navigation, asides, hidden elements, site headers and footers, and
  boilerplate found by class or id (cookie and consent banners, menus, share buttons, newsletters, ads).
- Block elements (paragraphs, headings, list items, table cells, ``<br>``) become line breaks, so sentences
  and paragraphs survive; runs of spaces collapse; entities are decoded by the parser.
- ``<title>`` is the document's title, and its first line unless the text already starts with it.
"""

from __future__ import annotations

import re
from typing import Any

from rag.extract import Unreadable
from rag.extract.plain import decode

_DROP_TAGS = frozenset(
    "script style noscript template iframe object embed svg canvas form button select textarea input "
    "nav aside dialog menu head".split()
)
_DROP_ROLES = frozenset("navigation banner contentinfo complementary search dialog alertdialog menu menubar".split())
_BOILERPLATE = re.compile(
    r"(?:^|[-_\s])(?:cookies?|consent|gdpr|nav|navbar|navigation|menu|breadcrumbs?|share|sharing|social|"
    r"newsletter|subscribe|signup|advert|ads?|sponsor|promo|popup|modal|banner|sidebar|related|comments?|"
    r"skip-link|masthead|site-header|site-footer)(?:$|[-_\s])",
    re.IGNORECASE,
)
_BLOCK_TAGS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table thead tbody tfoot tr td th caption blockquote pre "
    "section article main header footer figure figcaption address hr br details summary".split()
)
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


def _decode_html(data: bytes) -> str:
    """The page's characters: its BOM, else its declared charset, else UTF-8, else a detected encoding."""
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        m = _CHARSET.search(data[:4096])
        if m:
            try:
                return data.decode(m.group(1).decode("ascii").strip(), errors="replace")
            except LookupError:
                pass  # an unknown charset name: detect instead
    text, _ = decode(data)
    return text.removeprefix("\ufeff")


def _dropped(el: Any, inside_content: bool) -> bool:
    tag = el.tag if isinstance(el.tag, str) else ""
    if not tag:  # comments and processing instructions
        return True
    tag = tag.lower()
    if tag in _DROP_TAGS:
        return True
    if tag == "footer" or (tag == "header" and not inside_content):  # keep an article's own header (headline)
        return True
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    if (el.get("role") or "").lower() in _DROP_ROLES:
        return True
    style = (el.get("style") or "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    marks = f"{el.get('class') or ''} {el.get('id') or ''}"
    return bool(marks.strip()) and bool(_BOILERPLATE.search(marks))


def _content_root(doc: Any) -> tuple[Any, bool]:
    """The element holding the main text, and whether it is an article/main (not the whole body)."""
    articles = doc.xpath("//article")
    if len(articles) == 1:
        return articles[0], True
    main = doc.xpath("//main|//*[@role='main']")
    if main:
        return main[0], True
    body = doc.find("body")
    return (body if body is not None else doc), False


def _walk(el: Any, out: list[str], inside_content: bool) -> None:
    """Append the visible text under ``el`` to ``out``; "\\n" marks a block boundary."""
    tag = el.tag.lower() if isinstance(el.tag, str) else ""
    block = tag in _BLOCK_TAGS
    if block:
        out.append("\n")
    if el.text:
        out.append(el.text)
    for child in el:
        if not _dropped(child, inside_content):
            _walk(child, out, inside_content)
        if child.tail:  # the text after a child belongs to ``el``, dropped child or not
            out.append(child.tail)
    if block:
        out.append("\n")


def extract_html(data: bytes) -> tuple[str, str | None]:
    """The visible main text of an HTML page and its title; raises :class:`Unreadable`."""
    import lxml.html

    source = _decode_html(data)
    try:
        doc = lxml.html.document_fromstring(source)
    except Exception as exc:  # noqa: BLE001 - lxml raises several types for unparsable input
        raise Unreadable(f"not parseable as HTML ({exc.__class__.__name__})") from None
    titles = doc.xpath("//title")
    title = _SPACES.sub(" ", titles[0].text_content()).strip() if titles else ""
    root, inside_content = _content_root(doc)
    out: list[str] = []
    _walk(root, out, inside_content)
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n")]
    text = "\n".join(line for line in lines if line)
    if title and not text.startswith(title):
        text = f"{title}\n{text}" if text else title
    if not text:
        raise Unreadable("no visible text", "skipped")
    return text, title or None
