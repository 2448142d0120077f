"""Merging span predictions into answers: one answer per distinct text, with every place it was found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from rag.types import Answer, Citation


@dataclass(frozen=True)
class SpanPrediction:
    """One scored answer span at one place in one document."""

    doc_id: str
    start: int
    end: int
    quote_start: int
    quote_end: int
    score: float


def answer_key(text: str) -> str:
    """Texts that differ only in spacing are the same answer (so each citation quotes the answer as is)."""
    return " ".join(text.split())


SUPPORT_WEIGHTS = (1.0, 0.2, 0.1)


def support_score(scores: Iterable[float], weights: tuple[float, ...] = SUPPORT_WEIGHTS) -> float:
    """Evidence from several distinct sentences adds up, with diminishing weight: 1·s1 + 0.2·s2 + 0.1·s3."""
    ranked = sorted(scores, reverse=True)
    return min(1.0, max(0.0, sum(w * s for w, s in zip(weights, ranked))))


CELL_SEPARATOR = " | "  # how the Word and Markdown extractors join a table row's cells


def within_one_cell(p: SpanPrediction, text: str) -> SpanPrediction | None:
    """``p`` cut to the table cell it starts in, when it runs over a cell separator ("42 | +8%" is "42"); None
    when nothing of it is left but separators and spaces."""
    span = text[p.start : p.end]
    if CELL_SEPARATOR not in span:
        return p
    offset = 0
    for part in span.split(CELL_SEPARATOR):
        stripped = part.strip(" |")
        if stripped:
            start = p.start + offset + part.index(stripped)
            return replace(p, start=start, end=start + len(stripped))
        offset += len(part) + len(CELL_SEPARATOR)
    return None


def merge_predictions(
    preds: Iterable[SpanPrediction],
    documents: dict[str, str],
    top_k: int,
    threshold: float,
    support: tuple[float, ...] = SUPPORT_WEIGHTS,
) -> list[Answer]:
    """Group predictions by answer text, with one citation per distinct place.

    An answer's score is :func:`support_score` over the distinct quoted sentences that support it (a
    sentence repeated verbatim in another place counts once). Answers scoring below ``threshold`` are
    withheld; the rest come back best first, at most ``top_k``.
    """
    groups: dict[str, list[SpanPrediction]] = {}
    for pred in preds:
        p = within_one_cell(pred, documents[pred.doc_id])
        if p is None:
            continue
        text = documents[p.doc_id][p.start : p.end]
        groups.setdefault(answer_key(text), []).append(p)
    quotes: dict[tuple[str, int, int], str] = {}  # many predictions share a sentence: slice each once
    reach = sum(support)  # a group scores at most reach x its best prediction
    scored: list[tuple[float, list[SpanPrediction]]] = []
    for group in groups.values():
        if max(p.score for p in group) * reach < threshold:
            continue
        by_quote: dict[str, float] = {}
        for p in group:
            where = (p.doc_id, p.quote_start, p.quote_end)
            quote = quotes.get(where)
            if quote is None:
                quote = quotes[where] = documents[p.doc_id][p.quote_start : p.quote_end]
            by_quote[quote] = max(by_quote.get(quote, 0.0), p.score)
        score = support_score(by_quote.values(), support)
        if score >= threshold:
            scored.append((score, group))
    scored.sort(key=lambda sg: -sg[0])
    return drop_enclosing((_answer(group, score, documents) for score, group in scored), top_k)


def _answer(group: list[SpanPrediction], score: float, documents: dict[str, str]) -> Answer:
    """The answer of one group of predictions: its best place's text, one citation per distinct place."""
    group = sorted(group, key=lambda p: -p.score)
    seen: set[tuple[str, int, int]] = set()
    cites = []
    for p in group:
        if (p.doc_id, p.start, p.end) in seen:
            continue
        seen.add((p.doc_id, p.start, p.end))
        doc = documents[p.doc_id]
        cites.append(Citation(p.doc_id, p.start, p.end, doc[p.quote_start : p.quote_end], p.quote_start, p.quote_end))
    best = group[0]
    return Answer(documents[best.doc_id][best.start : best.end], score, tuple(cites))


def drop_enclosing(answers: Iterable[Answer], limit: int | None = None) -> list[Answer]:
    """Drop an answer every one of whose places merely encloses a better answer's place.

    "The US Secretary of State, Marco Rubio, is convening ..." adds nothing after "Marco Rubio" found in
    that very sentence; the slot goes to a different answer instead. ``answers`` must come best first;
    at most ``limit`` are kept (they are only built as far as needed).
    """
    kept: list[Answer] = []
    for a in answers:
        if limit is not None and len(kept) >= limit:
            break
        places = [(c.doc_id, c.start, c.end) for k in kept for c in k.citations]
        if places and all(
            any(d == c.doc_id and c.start <= s and e <= c.end and (s, e) != (c.start, c.end) for d, s, e in places)
            for c in a.citations
        ):
            continue
        kept.append(a)
    return kept
