"""The evidence stage on its own (rag/evidence.py): sentences of the hits, the ranker, the windows read."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from rag.chunking import split_sentences
from rag.evidence import (
    RankerWeights,
    SentenceRanker,
    collect_sentences,
    is_heading,
    select_evidence,
    select_windows,
    sentence_places,
    windows_of,
)
from rag.retrieval import Query
from rag.types import Chunk, Document, Hit, Span

A = (
    "Critical minerals outlook\n"
    "Ministers met on Monday. Washington ruled out price guarantees for miners. Prices fell afterwards. "
    "Analysts expect more talks."
)
B = "Washington ruled out price guarantees for miners. The reserve holds gallium and germanium."


@dataclass
class FakeIndex:
    """Just what the ranker reads of an index: documents, chunks, stored sentence and chunk vectors."""

    documents: dict[str, Document]
    chunks: list[Chunk]
    sentence_row: dict[tuple[str, int, int], int] = field(default_factory=dict)
    sentence_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))
    chunk_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))


def make_index() -> FakeIndex:
    docs = {"a.txt": Document("a.txt", A, "x"), "b.txt": Document("b.txt", B, "y")}
    chunks = [
        Chunk(row, d, 0, len(doc.text), doc.text, tuple(split_sentences(doc.text)))
        for row, (d, doc) in enumerate(docs.items())
    ]
    index = FakeIndex(docs, chunks)
    rows = [(c.doc_id, s.start, s.end) for c in chunks for s in c.sentences]
    index.sentence_row = {key: i for i, key in enumerate(rows)}
    index.sentence_vectors = np.zeros((len(rows), 2), dtype=np.float32)
    index.chunk_vectors = np.zeros((len(chunks), 2), dtype=np.float32)
    return index


def hits_of(index: FakeIndex) -> list[Hit]:
    return [Hit(c, 1.0 / (1 + i), i) for i, c in enumerate(index.chunks)]


def ranker_of(index: FakeIndex, **weights: float) -> SentenceRanker:
    idf = {"washington": 2.0, "rule": 3.0, "ruled": 3.0, "guarantee": 3.0, "guarantees": 3.0, "gallium": 4.0}
    return SentenceRanker(index, idf, 1.0, RankerWeights(**weights))  # type: ignore[arg-type]


def texts(doc: str, spans: tuple[Span, ...] | list[Span]) -> list[str]:
    return [doc[s.start : s.end] for s in spans]


def test_collect_sentences_every_place_once_with_neighbours_and_rank() -> None:
    index = make_index()
    hits = hits_of(index)
    dup = Hit(index.chunks[0], 0.1, 2)  # the same chunk retrieved again adds nothing
    sents = collect_sentences([*hits, dup], {d: doc.text for d, doc in index.documents.items()})
    assert [s.doc_id for s in sents] == ["a.txt"] * 5 + ["b.txt"] * 2
    for s in sents:
        assert index.documents[s.doc_id].text[s.span.start : s.span.end] == s.text
    first, second = sents[0], sents[1]
    assert first.text == "Critical minerals outlook" and first.neighbours == ("Ministers met on Monday.",)
    assert second.neighbours == ("Critical minerals outlook", "Washington ruled out price guarantees for miners.")
    assert {s.rank for s in sents if s.doc_id == "b.txt"} == {1}
    assert collect_sentences([], {}) == []


def test_sentence_places_lists_every_place_of_a_repeated_text() -> None:
    index = make_index()
    sents = collect_sentences(hits_of(index), {d: doc.text for d, doc in index.documents.items()})
    places = sentence_places(sents)
    repeated = "Washington ruled out price guarantees for miners."
    assert [d for d, _ in places[repeated]] == ["a.txt", "b.txt"]
    for doc_id, span in places[repeated]:
        assert index.documents[doc_id].text[span.start : span.end] == repeated
    assert all(len(v) == 1 for k, v in places.items() if k != repeated)


def test_ranker_prefers_the_question_words_weighted_by_idf() -> None:
    index = make_index()
    ranker = ranker_of(index)
    sents = ranker.sentences(hits_of(index))
    scores = ranker.score(Query.make("Who ruled out guarantees?"), sents)
    best = sents[int(np.argmax(scores))]
    assert best.text.startswith("Washington ruled out")
    # the rank prior: the same sentence scores higher in the better-ranked hit
    twice = [i for i, s in enumerate(sents) if s.text.startswith("Washington ruled out")]
    assert scores[twice[0]] > scores[twice[1]]
    # a rarer word counts for more: gallium (idf 4) beats washington (idf 2) in the same passage
    scores = ranker.score(Query.make("Washington gallium"), sents)
    assert [s.doc_id for s in sents[-2:]] == ["b.txt", "b.txt"]
    assert scores[-1] > scores[-2]


def test_ranker_uses_the_stored_vectors_of_sentence_and_passage() -> None:
    index = make_index()
    prices = next(s for s in index.chunks[0].sentences if A[s.start : s.end].startswith("Prices"))
    index.sentence_vectors[index.sentence_row[("a.txt", prices.start, prices.end)]] = (1.0, 0.0)
    ranker = ranker_of(index, rank=0.0, lexical=0.0, neighbours=0.0)
    sents = ranker.sentences(hits_of(index))
    scores = ranker.score(Query.make("nothing in common", np.array([1.0, 0.0], dtype=np.float32)), sents)
    assert sents[int(np.argmax(scores))].text == "Prices fell afterwards."
    assert scores.max() == pytest.approx(RankerWeights().dense)  # cosine 1 is above the ceiling: all of it
    index.chunk_vectors[1] = (1.0, 0.0)  # the passage's similarity lifts every sentence of b.txt
    scores = ranker.score(Query.make("nothing in common", np.array([1.0, 0.0], dtype=np.float32)), sents)
    assert all(scores[i] == pytest.approx(RankerWeights().passage) for i, s in enumerate(sents) if s.doc_id == "b.txt")
    # no query vector: lexical evidence only
    lexical_only = ranker_of(index).score(Query.make("Who ruled out guarantees?"), sents)
    assert sents[int(np.argmax(lexical_only))].text.startswith("Washington ruled out")


def test_heading_is_discounted() -> None:
    assert is_heading("Critical minerals outlook") and not is_heading("Prices fell afterwards.")
    index = make_index()
    sents = ranker_of(index).sentences(hits_of(index))
    q = Query.make("critical minerals outlook")
    full = ranker_of(index, heading=1.0).score(q, sents)
    discounted = ranker_of(index, heading=0.5).score(q, sents)
    assert discounted[0] == pytest.approx(full[0] * 0.5) and discounted[1] == pytest.approx(full[1])


def test_windows_are_the_best_distinct_sentences_with_a_neighbour_each_side() -> None:
    index = make_index()
    ranker = ranker_of(index)
    q = Query.make("Who ruled out guarantees?")
    windows = select_windows(q, hits_of(index), ranker, 3)
    assert len(windows) == 3
    centres = [index.documents[w.doc_id].text[w.center.start : w.center.end] for w in windows]
    assert centres[0] == "Washington ruled out price guarantees for miners."
    assert len(set(centres)) == 3  # the copy in b.txt is not read twice
    assert [w.rank for w in windows] == sorted((w.rank for w in windows), reverse=True)
    first = windows[0]
    assert (first.doc_id, texts(A, first.sentences)) == (
        "a.txt",
        ["Ministers met on Monday.", "Washington ruled out price guarantees for miners.", "Prices fell afterwards."],
    )
    for w in windows:
        assert (w.start, w.end) == (w.sentences[0].start, w.sentences[-1].end)
        assert w.center in w.sentences
    assert select_windows(q, hits_of(index), ranker, 1) == windows[:1]
    assert select_windows(q, [], ranker, 3) == []


def test_window_neighbours_each_side_and_chunk_edges() -> None:
    index = make_index()
    sents = ranker_of(index).sentences(hits_of(index))
    scores = np.zeros(len(sents), dtype=np.float32)
    scores[0] = 1.0  # the heading: first in its chunk, so it has no neighbour before it
    (edge,) = windows_of(sents, scores, index.chunks, 1)
    assert texts(A, edge.sentences) == ["Critical minerals outlook", "Ministers met on Monday."]
    scores[:] = 0.0
    scores[2] = 1.0  # the middle sentence of a.txt
    (wide,) = windows_of(sents, scores, index.chunks, 1, neighbours=2)
    assert len(wide.sentences) == 5 and (wide.start, wide.end) == (0, len(A))
    (alone,) = windows_of(sents, scores, index.chunks, 1, neighbours=0)
    assert alone.sentences == (alone.center,) and (alone.start, alone.end) == (alone.center.start, alone.center.end)
    assert windows_of(sents, scores, index.chunks, 0) == []


def test_select_evidence_gives_the_windows_and_every_place() -> None:
    index = make_index()
    ranker = ranker_of(index)
    q = Query.make("Who ruled out guarantees?")
    ev = select_evidence(q, hits_of(index), ranker, 2)
    assert list(ev.windows) == select_windows(q, hits_of(index), ranker, 2)
    assert ev.places == sentence_places(ranker.sentences(hits_of(index)))
    empty = select_evidence(q, [], ranker, 2)
    assert empty.windows == () and empty.places == {}


def test_distinct_windows_skip_a_sentence_already_read() -> None:
    index = make_index()
    doc = index.documents["a.txt"].text
    sents = collect_sentences(hits_of(index)[:1], {"a.txt": doc})
    # the two best sentences are neighbours: the second lies inside the first's window
    scores = np.array([0.0, 0.5, 1.0, 0.9, 0.2], dtype=np.float32)
    plain = windows_of(sents, scores, index.chunks, 2)
    distinct = windows_of(sents, scores, index.chunks, 2, distinct=True)
    assert [texts(doc, [w.center])[0] for w in plain] == [sents[2].text, sents[3].text]
    assert [w.center for w in distinct] == [sents[2].span, sents[4].span]  # the next sentence not yet read
    assert distinct[1].start <= sents[4].span.start and distinct[1].end >= sents[4].span.end


def test_headings_off_never_reads_a_heading_line() -> None:
    index = make_index()
    doc = index.documents["a.txt"].text
    sents = collect_sentences(hits_of(index)[:1], {"a.txt": doc})
    scores = np.array([1.0, 0.9, 0.5, 0.2, 0.1], dtype=np.float32)  # the heading ranked first
    with_h = windows_of(sents, scores, index.chunks, 1)
    without = windows_of(sents, scores, index.chunks, 1, headings=False)
    assert doc[with_h[0].center.start : with_h[0].center.end] == "Critical minerals outlook"
    w = without[0]
    assert doc[w.center.start : w.center.end] == "Ministers met on Monday."
    assert "Critical minerals outlook" not in doc[w.start : w.end]  # cut off the window's edge
    assert doc[w.start : w.end].endswith("guarantees for miners.")
