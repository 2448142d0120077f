"""Naive readers for comparison: the first sentence of the top passage, and always abstaining."""

from __future__ import annotations

from collections.abc import Sequence

from rag.retrieval import Query
from rag.types import Answer, Citation, Hit


class FirstSentenceReader:
    def __init__(self, documents: dict[str, str]) -> None:
        self.documents = documents

    def read(self, query: Query, hits: Sequence[Hit], top_k: int) -> list[Answer]:
        if not hits or not hits[0].chunk.sentences:
            return []
        c = hits[0].chunk
        s = c.sentences[0]
        quote = self.documents[c.doc_id][s.start : s.end]
        return [Answer(quote, 1.0, (Citation(c.doc_id, s.start, s.end, quote, s.start, s.end),))]


class AbstainReader:
    """Never answers: the reference point for a set where half the questions have no answer."""

    def read(self, query: Query, hits: Sequence[Hit], top_k: int) -> list[Answer]:
        return []
