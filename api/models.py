"""Request and response bodies of the HTTP service (they also make the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

MAX_QUESTION_CHARS = 1000  # the HTTP limit; the pipeline also enforces Settings.max_question_chars
MAX_TOP_K = 20

# One definition of "blank", shared by the schema and the check: the characters Python's str.strip removes
# (which include U+001C-U+001F and U+0085, NEL) and those JSON Schema's ECMAScript \s matches (which include
# U+FEFF, the byte order mark). Spelled out, since \s means different sets in Python, Rust and ECMAScript.
BLANK_CHARS = "".join(sorted({chr(c) for c in range(0x3001) if chr(c).isspace()} | {"\ufeff"}))
_BLANK_CLASS = "".join(f"\\u{ord(c):04x}" for c in BLANK_CHARS)
NOT_BLANK_PATTERN = f"[^{_BLANK_CLASS}]"  # what the schema says: at least one character that is not blank


def strip_blank(v: object) -> object:
    """Surrounding blank characters (:data:`BLANK_CHARS`) removed from a question."""
    return v.strip(BLANK_CHARS) if isinstance(v, str) else v


Question = Annotated[
    str,
    # pattern: at least one character that is not blank (so the schema, too, says a blank one is invalid)
    StringConstraints(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK_PATTERN),
    BeforeValidator(strip_blank),  # runs first (after the constraints here, so the schema keeps the pattern)
    Field(
        description="The question; surrounding whitespace (and byte order marks) are stripped.",
        examples=["Who opposed the price floor?"],
    ),
]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Question
    top_k: int = Field(3, ge=1, le=MAX_TOP_K, strict=True, description="Most answers to return.")

    @field_validator("top_k", mode="before")
    @classmethod
    def _integral_number(cls, v: object) -> object:
        # JSON Schema counts 11.0 as an integer (and clients may send it); strings and booleans stay errors
        return int(v) if isinstance(v, float) and v.is_integer() else v

    @field_validator("question")
    @classmethod
    def _encodable(cls, v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the question contains invalid Unicode (a lone surrogate escape)") from None
        return v


class Citation(BaseModel):
    """Where an answer was copied from: ``text[start:end]`` of document ``doc_id`` is the answer, and
    ``text[quote_start:quote_end]`` is ``quote``, the sentence around it."""

    doc_id: str
    start: int
    end: int
    quote: str
    quote_start: int
    quote_end: int
    page: int | None = Field(
        None, description="Page (1-based) the answer is on, for paged documents (PDF); absent for others."
    )
    doc_sha256: str | None = Field(
        None,
        description="SHA-256 of the cited document as indexed, as GET /documents/{doc_id} reports it: a document "
        "whose sha256 differs there is from a newer index (ask again), not a wrong citation.",
    )


class Passage(BaseModel):
    """A passage the reader read, checkable like a citation: ``text[start:end]`` of document ``doc_id`` is
    ``text`` (GET /documents/{doc_id})."""

    doc_id: str
    start: int
    end: int
    text: str


class Answer(BaseModel):
    text: str
    score: float = Field(description="Confidence 0..1; answers come best first.")
    citations: list[Citation]


class Conflict(BaseModel):
    """The documents disagree: answers from different documents give different values (amounts, dates or
    names) to the question."""

    answers: list[int] = Field(
        description="Indexes into `answers` of the answers that disagree, the best first (always 0)."
    )
    kind: Literal["amount", "date", "name"] = Field(description="What they disagree on.")
    note: str = Field(
        description="One sentence naming the answers and their documents, e.g. `The documents disagree: "
        '"$1.2 billion" (a.txt) vs "$2 billion" (b.txt).`'
    )


class AskResponse(BaseModel):
    """The public answer contract, identical to ``rag ask --json``. No answers means the documents do not say;
    then ``closest`` shows the best passages that were read. ``conflict`` says when the answers disagree."""

    question: str
    answers: list[Answer]
    closest: list[Passage] | None = Field(
        None,
        description="Only when `answers` is empty: the best few passages read (the closest evidence), best "
        "first; an empty list when nothing was retrieved. Absent when there are answers.",
    )
    conflict: Conflict | None = Field(
        None,
        description="Only when the documents disagree: answers from different documents, each a live candidate, "
        "with different values of one kind (the same value written two ways is one answer). Absent otherwise.",
    )
    index_built_at: str | None = Field(
        None, description="When the index that answered was built (GET /health's index_built_at names the current one)."
    )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    documents: int
    chunks: int
    model: str = Field(description="Embedding model the index was built with.")
    index_built_at: datetime


class DocumentInfo(BaseModel):
    doc_id: str
    chars: int = Field(description="Length of the text in characters (the unit of citation offsets).")
    bytes: int = Field(description="Size of the text in UTF-8 bytes (what the sha256 is computed over).")
    sha256: str = Field(description="SHA-256 of the document's UTF-8 bytes.")
    title: str | None = Field(None, description="The page title of an HTML document; absent for others.")
    pages: int | None = Field(None, description="Number of pages of a paged document (PDF); absent for others.")


class DocumentText(DocumentInfo):
    text: str
    page_starts: list[int] | None = Field(
        None,
        description="Where each page starts in text (code point offsets, first 0), for a paged document (PDF); "
        "absent for others.",
    )


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and how to fix it.")
