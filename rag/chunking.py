"""Sentence splitting and sentence-aware chunking with exact character offsets (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Chunk, Span

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs etc inc ltd co corp dept gov sen rep gen col lt sgt fig no nos
    approx est jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s u.k u.n e.u a.m p.m""".split()
)
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace and a likely start.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘'(\[]?[A-Z0-9•\-–—])")
_TOKEN_BEFORE = re.compile(r"(\S+)$")


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    para: int


def _is_abbreviation(text: str, dot: int) -> bool:
    m = _TOKEN_BEFORE.search(text, 0, dot)
    if not m:
        return False
    token = m.group(1).lstrip("\"'“‘(").lower()
    if token in _ABBREVIATIONS:
        return True
    # initials and dotted acronyms: "J.", "U.S", "a.k.a"
    return len(token) == 1 and token.isalpha() or bool(re.fullmatch(r"(?:[a-z]\.)+[a-z]", token))


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(text: str) -> list[Span]:
    """Split ``text`` into sentence spans, never crossing a line break; whitespace is trimmed off."""
    return [Span(s.start, s.end) for s in _sentences(text)]


def _sentences(text: str) -> list[_Sentence]:
    out: list[_Sentence] = []
    para = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        lstart, lend = _trimmed(text, pos, pos + len(line))
        pos += len(line)
        if lstart == lend:
            continue
        cur = lstart
        for m in _BOUNDARY.finditer(text, lstart, lend):
            if text[m.start()] == "." and _is_abbreviation(text, m.start()):
                continue
            s, e = _trimmed(text, cur, m.end())
            if s < e:
                out.append(_Sentence(s, e, para))
            cur = m.end()
        s, e = _trimmed(text, cur, lend)
        if s < e:
            out.append(_Sentence(s, e, para))
        para += 1
    return out


def _split_long(text: str, sent: _Sentence, max_chars: int) -> list[_Sentence]:
    """Cut a sentence longer than ``max_chars`` at whitespace into pieces of at most ``max_chars``."""
    pieces: list[_Sentence] = []
    start = sent.start
    while sent.end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        if cut <= start:
            cut = start + max_chars
        s, e = _trimmed(text, start, cut)
        pieces.append(_Sentence(s, e, sent.para))
        start, _ = _trimmed(text, cut, sent.end)
    pieces.append(_Sentence(start, sent.end, sent.para))
    return pieces


def chunk_text(text: str, max_chars: int = 600, overlap: int = 1) -> list[tuple[int, int, tuple[Span, ...]]]:
    """Group sentences into chunks of at most about ``max_chars`` characters.

    A chunk closes at a paragraph break once it is at least half full, or when the next sentence would
    overflow it; after an overflow inside a paragraph the next chunk repeats the last ``overlap``
    sentences. Returns ``(start, end, sentence_spans)`` triples with ``text[start:end]`` the chunk.
    """
    sents: list[_Sentence] = []
    for s in _sentences(text):
        sents.extend(_split_long(text, s, max_chars) if s.end - s.start > max_chars else [s])

    chunks: list[tuple[int, int, tuple[Span, ...]]] = []
    current: list[_Sentence] = []

    def emit() -> None:
        chunks.append((current[0].start, current[-1].end, tuple(Span(s.start, s.end) for s in current)))

    for sent in sents:
        if current:
            new_para = sent.para != current[-1].para
            too_long = sent.end - current[0].start > max_chars
            if too_long or (new_para and current[-1].end - current[0].start >= max_chars // 2):
                emit()
                keep = [] if new_para or overlap == 0 else current[-overlap:]
                while keep and sent.end - keep[0].start > max_chars:
                    keep = keep[1:]
                current = keep
        current.append(sent)
    if current:
        emit()
    return chunks


def chunk_documents(
    docs: Sequence[tuple[str, str]], max_chars: int = 600, overlap: int = 1, first_row: int = 0
) -> list[Chunk]:
    """Chunk ``(doc_id, text)`` pairs; rows are numbered consecutively from ``first_row``."""
    out: list[Chunk] = []
    for doc_id, text in docs:
        for start, end, spans in chunk_text(text, max_chars, overlap):
            out.append(Chunk(first_row + len(out), doc_id, start, end, text[start:end], spans))
    return out
