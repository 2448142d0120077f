"""Retrievers (dense FAISS, BM25, hybrid) and the pure functions they share: fusion and de-duplication."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.text import terms
from rag.types import Chunk, Hit


@dataclass(frozen=True)
class Query:
    text: str
    terms: tuple[str, ...]
    vector: np.ndarray | None  # normalised query embedding, None for lexical-only use

    @classmethod
    def make(cls, text: str, vector: np.ndarray | None = None) -> Query:
        return cls(text, tuple(terms(text)), vector)


class Retriever(Protocol):
    needs_vectors: bool

    def search(self, query: Query, k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` (row, score) pairs, best first."""
        ...


# ------------------------------------------------------------------------------------- pure functions
def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(row) = sum over rankings of 1 / (k + rank), rank from 1.

    Ties keep the order in which rows were first seen.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


@lru_cache(maxsize=100_000)
def shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    t = terms(text)
    if len(t) < n:
        return frozenset([tuple(t)]) if t else frozenset()
    return frozenset(tuple(t[i : i + n]) for i in range(len(t) - n + 1))


def containment(a: frozenset, b: frozenset) -> float:
    """|a ∩ b| / min(|a|, |b|): 1.0 when one passage is contained in the other."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


@lru_cache(maxsize=1_000_000)
def near_duplicates(a: str, b: str, threshold: float) -> bool:
    """Whether one passage (nearly) contains the other; cached, since the same pairs recur across questions."""
    return containment(shingles(a), shingles(b)) >= threshold


def collapse_duplicates(
    ranked: Sequence[tuple[Chunk, float]],
    k: int,
    threshold: float = 0.8,
    same: Callable[[Chunk, Chunk], bool] | None = None,
) -> list[Hit]:
    """Fold near-identical passages into the best-ranked one, so copies take one slot of the top ``k``.

    ``same(a, b)`` decides; by default :func:`near_duplicates` of their texts at ``threshold``.
    """
    if same is None:

        def same(a: Chunk, b: Chunk) -> bool:
            return near_duplicates(a.text, b.text, threshold)

    hits: list[tuple[Chunk, float, list[Chunk]]] = []
    for chunk, score in ranked:
        for rep, _, dups in hits:
            if same(chunk, rep):
                dups.append(chunk)
                break
        else:
            if len(hits) < k:
                hits.append((chunk, score, []))
    return [Hit(c, s, rank, tuple(d)) for rank, (c, s, d) in enumerate(hits)]


# ------------------------------------------------------------------------------------------ retrievers
class DenseRetriever:
    needs_vectors = True

    def __init__(self, faiss_index, vectors: np.ndarray | None = None, rerank: int = 1) -> None:  # noqa: ANN001
        """``faiss_index``: a faiss.Index; with ``vectors`` (the chunk vectors) and ``rerank`` > 1, its best
        ``k x rerank`` are re-scored exactly (for a product-quantised index)."""
        self._index, self._vectors, self._rerank = faiss_index, vectors, rerank

    def search(self, query: Query, k: int) -> list[tuple[int, float]]:
        from rag.vector_index import search

        if query.vector is None:
            raise ValueError("DenseRetriever needs the query vector")
        scores, rows = search(self._index, query.vector.reshape(1, -1), k, self._vectors, self._rerank)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]


def _import_bm25s():  # noqa: ANN202 - returns the bm25s module
    """Import bm25s without scipy.sparse, which would add ~0.1 s to every cold `rag ask`.

    bm25s imports scipy.sparse only for an optional way to build its score matrix and builds the same
    matrix with numpy when scipy is missing; hiding it during the import selects that path. If scipy.sparse
    is already loaded (torch indexing, tests), nothing is hidden.
    """
    if "bm25s" in sys.modules or "scipy.sparse" in sys.modules:
        import bm25s

        return bm25s
    sys.modules["scipy.sparse"] = None  # type: ignore[assignment]  # makes `import scipy.sparse` fail
    try:
        import bm25s
    finally:
        del sys.modules["scipy.sparse"]
    return bm25s


# the BM25 index's files inside an index directory (bm25s's own save format: numpy arrays and JSON, no pickle)
BM25_FILES = {
    "data_name": "bm25_data.npy",
    "indices_name": "bm25_indices.npy",
    "indptr_name": "bm25_indptr.npy",
    "vocab_name": "bm25_vocab.json",
    "params_name": "bm25_params.json",
}


class BM25Retriever:
    """BM25 (bm25s, Lucene variant) over the chunks' analysed terms (:func:`rag.text.terms`).

    Built from the chunk texts at indexing time and saved beside the vectors (:meth:`save`), so loading an
    index reads arrays instead of re-analysing every chunk (:meth:`load`).
    """

    needs_vectors = False

    def __init__(self, texts: Sequence[str]) -> None:
        bm25s = _import_bm25s()
        model = bm25s.BM25(csc_backend="numpy")  # the same either way; explicit so results never differ
        model.index([list(terms(t)) or ["<empty>"] for t in texts], show_progress=False)
        self._use(model)

    @classmethod
    def load(cls, directory: Path) -> BM25Retriever:
        """The BM25 index saved in ``directory`` by :meth:`save` (OSError/ValueError if it cannot be read)."""
        bm25s = _import_bm25s()
        self = cls.__new__(cls)
        self._use(bm25s.BM25.load(str(directory), show_progress=False, **BM25_FILES))
        return self

    def save(self, directory: Path) -> list[str]:
        """Write the index into ``directory``; return the names of the files written."""
        self._bm25.save(str(directory), show_progress=False, **BM25_FILES)
        return list(BM25_FILES.values())

    def _use(self, model: Any) -> None:  # noqa: ANN401 - a bm25s.BM25
        self._bm25 = model
        self._vocab = set(model.vocab_dict)
        self._n = int(model.scores["num_docs"])
        # document frequency of a term = the stored scores in its column of the (documents x terms) matrix
        indptr = np.asarray(model.scores["indptr"])
        df = np.diff(indptr)
        n = self._n
        self.idf = {
            t: math.log(1 + (n - int(df[i]) + 0.5) / (int(df[i]) + 0.5))
            for t, i in model.vocab_dict.items()
            if i < len(df)  # bm25s adds an empty-string token with no column
        }
        self.default_idf = math.log(1 + (n + 0.5) / 0.5)

    def search(self, query: Query, k: int) -> list[tuple[int, float]]:
        toks = [t for t in query.terms if t in self._vocab]
        if not toks or self._n == 0:
            return []
        scores = self._bm25.get_scores(toks)
        k = min(k, self._n)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(r), float(scores[r])) for r in top if scores[r] > 0]


class HybridRetriever:
    """Reciprocal rank fusion of a dense and a lexical retriever (pyserini-style: searchers injected)."""

    needs_vectors = True

    def __init__(self, dense: Retriever, lexical: Retriever, rrf_k: int = 60) -> None:
        self.dense, self.lexical, self.rrf_k = dense, lexical, rrf_k

    def search(self, query: Query, k: int) -> list[tuple[int, float]]:
        d = [r for r, _ in self.dense.search(query, k)]
        lx = [r for r, _ in self.lexical.search(query, k)]
        return rrf_fuse([d, lx], self.rrf_k)[:k]


class PassageRetriever:
    """Wraps a row-level retriever: maps rows to chunks and collapses duplicates into top-k hits."""

    def __init__(self, searcher: Retriever, chunks: Sequence[Chunk], candidate_k: int, threshold: float) -> None:
        self.searcher, self.chunks = searcher, chunks
        self.candidate_k, self.threshold = candidate_k, threshold
        self._pairs: dict[tuple[int, int], bool] = {}

    @property
    def needs_vectors(self) -> bool:
        return self.searcher.needs_vectors

    def retrieve(self, query: Query, k: int) -> list[Hit]:
        rows = self.searcher.search(query, max(k, self.candidate_k))
        return collapse_duplicates([(self.chunks[r], s) for r, s in rows], k, self.threshold, self._same)

    def _same(self, a: Chunk, b: Chunk) -> bool:
        """near_duplicates of two chunks, remembered by their rows (pairs recur across questions)."""
        key = (a.row, b.row)
        same = self._pairs.get(key)
        if same is None:
            if len(self._pairs) >= 1_000_000:  # bounded, for a long-running service over a large corpus
                self._pairs.clear()
            same = self._pairs[key] = near_duplicates(a.text, b.text, self.threshold)
        return same
