"""Merging span predictions into answers: one answer per distinct text, with every place it was found."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.types import Answer, Citation

_ARTICLES = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)


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
    """Texts that differ only in case, spacing, punctuation or a leading article are the same answer."""
    t = re.sub(r"[\W_]+", " ", text.lower()).strip()
    return _ARTICLES.sub("", t)


def merge_predictions(
    preds: Iterable[SpanPrediction], documents: dict[str, str], top_k: int, threshold: float
) -> list[Answer]:
    """Group predictions by answer text; keep the best score and one citation per distinct place.

    Answers scoring below ``threshold`` are withheld; the rest come back best first, at most ``top_k``.
    """
    groups: dict[str, list[SpanPrediction]] = {}
    for p in preds:
        text = documents[p.doc_id][p.start : p.end]
        groups.setdefault(answer_key(text), []).append(p)
    answers = []
    for group in groups.values():
        group.sort(key=lambda p: -p.score)
        best = group[0]
        seen: set[tuple[str, int, int]] = set()
        cites = []
        for p in group:
            if (p.doc_id, p.start, p.end) in seen:
                continue
            seen.add((p.doc_id, p.start, p.end))
            doc = documents[p.doc_id]
            cites.append(
                Citation(p.doc_id, p.start, p.end, doc[p.quote_start : p.quote_end], p.quote_start, p.quote_end)
            )
        score = min(1.0, max(0.0, best.score))
        if score >= threshold:
            answers.append(Answer(documents[best.doc_id][best.start : best.end], score, tuple(cites)))
    answers.sort(key=lambda a: -a.score)
    return answers[:top_k]
