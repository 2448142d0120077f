"""Readers turn retrieved passages into extractive answers with citations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.retrieval import Query
from rag.types import Answer, Hit


class Reader(Protocol):
    def read(self, query: Query, hits: Sequence[Hit], top_k: int) -> list[Answer]:
        """Answers sorted by score (0..1, best first); an empty list means the passages do not answer."""
        ...


def read_batch(reader: Reader, queries: Sequence[Query], hits: Sequence[Sequence[Hit]], top_k: Sequence[int]) -> list[list[Answer]]:
    """``reader.read`` for each question: through the reader's own ``read_batch`` when it has one (the learned
    reader reads all the questions' windows in one model pass), else one question at a time."""
    batched = getattr(reader, "read_batch", None)
    if batched is not None:
        return batched(queries, hits, top_k)
    return [reader.read(q, h, k) for q, h, k in zip(queries, hits, top_k, strict=True)]
