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
