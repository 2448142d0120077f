"""Plain immutable records passed between the parts of the library."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple


class SourceStamp(NamedTuple):
    """Where a document was read from and what the file looked like then (to notice later edits cheaply)."""

    path: str  # absolute
    size: int  # bytes
    mtime_ns: int


@dataclass(frozen=True)
class Document:
    """An indexed document: ``text`` is what citation offsets index into (``GET /documents/{doc_id}`` serves it)."""

    doc_id: str  # path relative to the corpus root, with "/"
    text: str  # the indexed text (a UTF-8 .txt: exactly as Path.read_text(encoding="utf-8") returns it)
    sha256: str  # of the text's UTF-8 bytes
    source: SourceStamp | None = None  # the file it was read from, when read from one
    file_sha256: str | None = None  # of the file's bytes (unchanged bytes and extractor: not extracted again)
    extractor: str | None = None  # what turned the file into ``text`` (rag.extract.extractor_id)
    encoding: str | None = None  # of a text file that was not UTF-8
    title: str | None = None  # an HTML page's <title>
    pages: tuple[int, ...] = ()  # where each page starts in ``text`` (PDF); empty when not paged


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` into a document's text."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    row: int  # row in the vector index
    doc_id: str
    start: int
    end: int
    text: str  # == document.text[start:end]
    sentences: tuple[Span, ...] = ()  # absolute sentence spans inside [start, end)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, with the near-identical chunks collapsed into it."""

    chunk: Chunk
    score: float
    rank: int
    duplicates: tuple[Chunk, ...] = ()

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return (self.chunk, *self.duplicates)


@dataclass(frozen=True)
class Citation:
    """Where an answer is written: ``document.text[start:end]`` is the answer and ``text[quote_start:quote_end]``
    the quoted sentence around it (``quote``); code point offsets into the indexed text."""

    doc_id: str
    start: int
    end: int
    quote: str
    quote_start: int
    quote_end: int
    page: int | None = None  # 1-based page holding ``start``, for paged documents (PDF)
    doc_sha256: str | None = None  # the cited document's sha256 as indexed (GET /documents/{doc_id} has it too)


@dataclass(frozen=True)
class Answer:
    """One answer: a span copied from the documents, its ``score`` (0..1, higher is surer) and every place it is
    written (``citations``, best first)."""

    text: str
    score: float
    citations: tuple[Citation, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Passage:
    """A stretch of a document the reader read: ``document.text[start:end] == text``."""

    doc_id: str
    start: int
    end: int
    text: str


ConflictKind = Literal["amount", "date", "name"]


@dataclass(frozen=True)
class Conflict:
    """The documents disagree: ``answers`` are indexes into the result's answers (the best one first), whose
    values of one ``kind`` differ and whose citations share no document; ``note`` says so in one sentence
    (see :mod:`rag.conflict`)."""

    answers: tuple[int, ...]
    kind: ConflictKind
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"answers": list(self.answers), "kind": self.kind, "note": self.note}


@dataclass(frozen=True)
class Result:
    """The answers to one question, best first; none: the documents do not answer it (``closest`` then holds the
    passages that came closest). ``to_dict()`` is the answer JSON of ``rag ask --json`` and ``POST /ask``."""

    question: str
    answers: tuple[Answer, ...]
    # no answers: the best passages read (the closest evidence), best first; None: not worked out
    closest: tuple[Passage, ...] | None = None
    index_built_at: str | None = None  # the answering index's build time (as GET /health gives it)
    conflict: Conflict | None = None  # the top answers disagree (different documents, different values)

    def to_dict(self) -> dict[str, Any]:
        """The public answer contract (see README, "Answer JSON"); ``closest`` only when there is no answer,
        ``conflict`` only when the documents disagree."""
        out: dict[str, Any] = {
            "question": self.question,
            "answers": [
                {
                    "text": a.text,
                    "score": round(a.score, 4),
                    "citations": [_citation_dict(c) for c in a.citations],
                }
                for a in self.answers
            ],
        }
        if not self.answers and self.closest is not None:
            out["closest"] = [
                {"doc_id": p.doc_id, "start": p.start, "end": p.end, "text": p.text} for p in self.closest
            ]
        if self.conflict is not None:
            out["conflict"] = self.conflict.to_dict()
        if self.index_built_at is not None:
            out["index_built_at"] = self.index_built_at
        return out


def _citation_dict(c: Citation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "doc_id": c.doc_id,
        "start": c.start,
        "end": c.end,
        "quote": c.quote,
        "quote_start": c.quote_start,
        "quote_end": c.quote_end,
    }
    if c.page is not None:  # only citations of paged documents carry a page
        out["page"] = c.page
    if c.doc_sha256 is not None:
        out["doc_sha256"] = c.doc_sha256
    return out
