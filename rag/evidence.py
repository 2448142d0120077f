"""Evidence selection: which sentences of the retrieved passages a reader reads, best first.

The pipeline reads: retrieve → **select evidence** → read → decide → cite. This module is the second step,
shared by every reader (and by the pipeline, which shows the best windows when the reader abstains):

1. :func:`collect_sentences`: every sentence of the retrieved hits (a hit's near-duplicate chunks too), once
   per place, with its neighbours' texts and the retrieval rank of its hit.
2. :class:`SentenceRanker`: a score per sentence (0..1) mixing the dense similarity of question and sentence
   and of question and the sentence's passage (the vectors are stored in the index, so nothing is embedded
   here), the idf-weighted share of question terms the sentence (and, less, its neighbours) contains, and
   the passage's retrieval rank; a heading or title line is discounted (:class:`RankerWeights`).
3. :func:`select_windows`: the best ``n`` distinct sentence texts, each widened by its neighbours inside its
   chunk (a *window*, what the learned reader was trained to read), and :func:`sentence_places`: every place
   a sentence text occurs, so an answer read in one place is cited at all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rag.text import terms
from rag.types import Chunk, Hit, Span

if TYPE_CHECKING:
    from rag.retrieval import Query
    from rag.store import IndexData

# sentences each side of a window's centre: the shape the learned reader was trained on (rag/train/windows.py)
TRAINED_NEIGHBOURS = 1


@dataclass(frozen=True)
class RankerWeights:
    dense: float = 0.40
    passage: float = 0.15  # dense similarity of the whole passage: context the sentence alone lacks
    lexical: float = 0.30
    neighbours: float = 0.05
    rank: float = 0.10
    dense_floor: float = 0.10  # cosine mapped to 0
    dense_ceiling: float = 0.70  # cosine mapped to 1
    heading: float = 0.6  # a title or heading line (no closing punctuation) rarely states an answer


@dataclass(frozen=True)
class Sentence:
    """One place of a sentence in a retrieved chunk."""

    doc_id: str
    span: Span  # absolute, into the document's text
    text: str  # == document text[span.start:span.end]
    rank: int  # retrieval rank of the hit it came from
    neighbours: tuple[str, ...]  # the texts of the sentences before and after it in its chunk
    chunk_row: int


@dataclass(frozen=True)
class Window:
    """A ranked sentence and its neighbours: a contiguous stretch ``[start, end)`` of one document."""

    doc_id: str
    center: Span  # the ranked sentence
    rank: float  # its ranking score
    start: int
    end: int
    sentences: tuple[Span, ...]  # the window's sentences (absolute)


Places = dict[str, list[tuple[str, Span]]]  # sentence text -> every (doc_id, span) where it occurs


@dataclass(frozen=True)
class Evidence:
    """What a reader reads: the windows, best first, and the places of every retrieved sentence text."""

    windows: tuple[Window, ...]
    places: Places


@lru_cache(maxsize=100_000)
def term_set(text: str) -> frozenset[str]:
    return frozenset(terms(text))


def is_heading(sentence: str) -> bool:
    """A short line without closing punctuation: a title, heading or caption."""
    return not sentence.rstrip().endswith((".", "!", "?", '"', "”", "’", ")")) and len(sentence.split()) < 15


def collect_sentences(hits: Sequence[Hit], documents: Mapping[str, str]) -> list[Sentence]:
    """Every sentence of the hits' chunks, once per place, in retrieval order."""
    out: dict[tuple[str, int, int], Sentence] = {}
    for hit in hits:
        for chunk in hit.chunks:
            doc = documents[chunk.doc_id]
            spans = chunk.sentences
            for i, sp in enumerate(spans):
                key = (chunk.doc_id, sp.start, sp.end)
                if key in out:
                    continue
                nb = tuple(doc[n.start : n.end] for n in (spans[i - 1 : i] + spans[i + 1 : i + 2]))
                out[key] = Sentence(chunk.doc_id, sp, doc[sp.start : sp.end], hit.rank, nb, chunk.row)
    return list(out.values())


def sentence_places(sents: Sequence[Sentence]) -> Places:
    """Every place each sentence text occurs (a repeated paragraph, a duplicated article), in order."""
    places: Places = {}
    for s in sents:
        places.setdefault(s.text, []).append((s.doc_id, s.span))
    return places


class SentenceRanker:
    """Scores sentences for a question over one index (its stored sentence and chunk vectors, BM25's idf)."""

    def __init__(
        self, index: IndexData, idf: Mapping[str, float], default_idf: float, weights: RankerWeights | None = None
    ) -> None:
        self.index = index
        self.idf, self.default_idf = idf, default_idf
        self.w = weights or RankerWeights()
        self.docs = {d: doc.text for d, doc in index.documents.items()}

    def sentences(self, hits: Sequence[Hit]) -> list[Sentence]:
        return collect_sentences(hits, self.docs)

    def score(self, query: Query, sents: Sequence[Sentence]) -> np.ndarray:
        """One score per sentence, higher is likelier to hold the answer."""
        w = self.w
        qidf = {t: self.idf.get(t, self.default_idf) for t in query.terms}
        qterms, total = frozenset(qidf), sum(qidf.values())

        def lexical(text: str) -> float:  # the idf-weighted share of the question's terms found in text
            return sum(qidf[t] for t in qterms & term_set(text)) / total if total > 0 else 0.0

        dense = np.zeros(len(sents), dtype=np.float32)
        passage = np.zeros(len(sents), dtype=np.float32)
        if query.vector is not None and sents:
            rows = [self.index.sentence_row[(s.doc_id, s.span.start, s.span.end)] for s in sents]
            cos = self.index.sentence_vectors[rows] @ query.vector
            dense = np.clip((cos - w.dense_floor) / (w.dense_ceiling - w.dense_floor), 0.0, 1.0)
            pcos = self.index.chunk_vectors[[s.chunk_row for s in sents]] @ query.vector
            passage = np.clip((pcos - w.dense_floor) / (w.dense_ceiling - w.dense_floor), 0.0, 1.0)
        scores = np.empty(len(sents), dtype=np.float32)
        for i, s in enumerate(sents):
            lex = lexical(s.text)
            nb = lexical(" ".join(s.neighbours)) if s.neighbours else 0.0
            scores[i] = (
                w.dense * dense[i]
                + w.passage * passage[i]
                + w.lexical * lex
                + w.neighbours * nb
                + w.rank / (1 + s.rank)
            )
            if is_heading(s.text):
                scores[i] *= w.heading
        return scores


def windows_of(
    sents: Sequence[Sentence],
    scores: np.ndarray,
    chunks: Sequence[Chunk],
    n: int,
    *,
    neighbours: int = TRAINED_NEIGHBOURS,
    distinct: bool = False,
    headings: bool = True,
    first: Sequence[tuple[str, Span]] = (),
) -> list[Window]:
    """The ``n`` best-scored distinct sentence texts (ties: retrieval order), each with ``neighbours``
    sentences on each side inside its chunk (fewer at a chunk's edge).

    ``distinct``: a sentence that already lies inside a chosen window is not made a window of its own (its
    window would mostly repeat text already read); the next best sentence is taken instead.
    ``headings=False``: heading lines (:func:`is_heading`) are not read: never a window's sentence, and cut
    off a window's edges. A heading names a topic (the ranker has used it through the passage's vector and
    the neighbours' terms) but rarely states an answer.
    ``first``: sentences (doc id, span) taken before the ranked order, e.g. where another reader found its
    best answers.
    """
    out: list[Window] = []
    seen: set[str] = set()
    if n <= 0:
        return out
    at = {(s.doc_id, s.span): i for i, s in enumerate(sents)}
    lead = [at[key] for key in dict.fromkeys(first) if key in at]
    order = lead + [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in lead]
    for i in order:
        s = sents[int(i)]
        if s.text in seen:
            continue
        if distinct and any(w.doc_id == s.doc_id and w.start <= s.span.start and s.span.end <= w.end for w in out):
            continue
        if not headings and is_heading(s.text):
            continue
        seen.add(s.text)
        chunk = chunks[s.chunk_row]
        spans = chunk.sentences
        k = next((j for j, sp in enumerate(spans) if sp == s.span), None)
        around = spans[max(0, k - neighbours) : k + neighbours + 1] if k is not None else (s.span,)
        if not headings:
            line = lambda sp, c=chunk: c.text[sp.start - c.start : sp.end - c.start]  # noqa: E731
            while around[0] != s.span and is_heading(line(around[0])):
                around = around[1:]
            while around[-1] != s.span and is_heading(line(around[-1])):
                around = around[:-1]
        out.append(Window(s.doc_id, s.span, float(scores[int(i)]), around[0].start, around[-1].end, tuple(around)))
        if len(out) >= n:
            break
    return out


@dataclass(frozen=True)
class Ranked:
    """The retrieved sentences of one question and the ranker's score of each (worked out once, read by
    every stage that needs the ranking)."""

    sents: tuple[Sentence, ...]
    scores: np.ndarray


def rank_sentences(query: Query, hits: Sequence[Hit], ranker: SentenceRanker) -> Ranked:
    sents = tuple(ranker.sentences(hits))
    return Ranked(sents, ranker.score(query, sents) if sents else np.zeros(0, dtype=np.float32))


def evidence_from(
    ranked: Ranked,
    ranker: SentenceRanker,
    n: int,
    *,
    neighbours: int = TRAINED_NEIGHBOURS,
    distinct: bool = False,
    headings: bool = True,
    first: Sequence[tuple[str, Span]] = (),
) -> Evidence:
    """The best ``n`` windows of an already ranked question and the places of every retrieved sentence text."""
    if not ranked.sents:
        return Evidence((), {})
    windows = windows_of(
        ranked.sents,
        ranked.scores,
        ranker.index.chunks,
        n,
        neighbours=neighbours,
        distinct=distinct,
        headings=headings,
        first=first,
    )
    return Evidence(tuple(windows), sentence_places(ranked.sents))


def select_evidence(
    query: Query,
    hits: Sequence[Hit],
    ranker: SentenceRanker,
    n: int,
    *,
    neighbours: int = TRAINED_NEIGHBOURS,
    distinct: bool = False,
    headings: bool = True,
) -> Evidence:
    """The best ``n`` windows for ``query`` and the places of every retrieved sentence text."""
    ranked = rank_sentences(query, hits, ranker)
    return evidence_from(ranked, ranker, n, neighbours=neighbours, distinct=distinct, headings=headings)


def select_windows(
    query: Query,
    hits: Sequence[Hit],
    ranker: SentenceRanker,
    n: int,
    *,
    neighbours: int = TRAINED_NEIGHBOURS,
    distinct: bool = False,
    headings: bool = True,
) -> list[Window]:
    """The best ``n`` distinct sentences for ``query``, each with its neighbours: what a reader reads."""
    evidence = select_evidence(query, hits, ranker, n, neighbours=neighbours, distinct=distinct, headings=headings)
    return list(evidence.windows)
