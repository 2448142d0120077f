from __future__ import annotations

import pytest

from rag.retrieval import BM25Retriever, Query, collapse_duplicates, containment, rrf_fuse, shingles
from rag.types import Chunk


def test_rrf_fuse_exact_scores_and_order():
    fused = rrf_fuse([[1, 2, 3], [3, 1]], k=60)
    assert [row for row, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)


def test_rrf_fuse_empty():
    assert rrf_fuse([[], []]) == []


def test_containment():
    a = shingles("the quick brown fox jumps over the lazy dog")
    b = shingles("quick brown fox jumps over the lazy dog and then runs away fast")
    assert containment(a, a) == 1.0
    assert containment(a, frozenset()) == 0.0
    assert containment(a, b) == 1.0  # a is contained in b (stopwords dropped)


def _chunk(row, text, doc="d.txt"):
    return Chunk(row, doc, 0, len(text), text)


def test_collapse_duplicates_folds_copies_into_one_slot():
    same = "Washington has so far ruled out such guarantees, sending shares downward."
    ranked = [
        (_chunk(0, same, "a.txt"), 0.9),
        (_chunk(1, same, "b.txt"), 0.8),
        (_chunk(2, "Australia announced a strategic reserve of critical minerals."), 0.7),
        (_chunk(3, "The EU uses twenty thousand tonnes of magnets annually."), 0.6),
    ]
    hits = collapse_duplicates(ranked, k=2)
    assert [h.chunk.row for h in hits] == [0, 2]
    assert [c.row for c in hits[0].duplicates] == [1]
    assert [h.rank for h in hits] == [0, 1]


def test_bm25_keyword_search_and_unknown_words():
    bm = BM25Retriever(["Marco Rubio is convening this meeting", "Australia reserve of minerals", "magnets"])
    assert bm.search(Query.make("Who convened it?"), 2)[0][0] == 0
    assert bm.search(Query.make("zzzz qqqq"), 2) == []
