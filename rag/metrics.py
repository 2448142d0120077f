"""Evaluation metrics: pure functions, no I/O, no models.

Answer scoring follows the official SQuAD 2.0 evaluation script: answers are compared after
:func:`normalize` (lowercase, punctuation removed, articles removed, whitespace collapsed); exact match and
token F1 take the best score over the acceptable gold answers. A question with no gold answer is
unanswerable: a system scores 1.0 on it only by abstaining (predicting ``None`` or an empty string).

The one deliberate difference from the official script: besides ASCII punctuation, every Unicode
punctuation character (curly quotes, en and em dashes, ellipsis, ...) is removed too, so ``O’Carroll`` and
``O'Carroll`` normalise alike.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "abstained",
    "aggregate",
    "best_of_k_exact_match",
    "best_of_k_f1",
    "citation_valid",
    "exact_match",
    "f1",
    "normalize",
    "percentile",
    "recall_at_k",
    "reciprocal_rank",
    "tokens",
]

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


@lru_cache(maxsize=4096)
def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize(text: str) -> str:
    """SQuAD 2.0 answer normalisation: lowercase, drop punctuation, drop a/an/the, collapse whitespace.

    >>> normalize("The  U.S.-led “club”!")
    'usled club'
    """
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str | None) -> list[str]:
    """The normalised tokens of ``text`` (none for ``None``)."""
    return normalize(text).split() if text else []


def abstained(prediction: str | None) -> bool:
    """True when a prediction means "no answer": ``None``, empty or only whitespace."""
    return prediction is None or not prediction.strip()


def _em_one(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def _f1_one(prediction: str, gold: str) -> float:
    pred_toks, gold_toks = tokens(prediction), tokens(gold)
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _score(prediction: str | None, gold_answers: Sequence[str], one) -> float:  # noqa: ANN001
    if not gold_answers:  # unanswerable: only abstaining is right
        return float(abstained(prediction))
    if abstained(prediction):
        return 0.0
    assert prediction is not None
    return max(one(prediction, g) for g in gold_answers)


def exact_match(prediction: str | None, gold_answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0.

    With no gold answers (unanswerable) it is 1.0 iff the prediction abstains (``None`` or empty).
    """
    return _score(prediction, gold_answers, _em_one)


def f1(prediction: str | None, gold_answers: Sequence[str]) -> float:
    """Best token-overlap F1 between the prediction and any gold answer (SQuAD bag-of-tokens F1).

    With no gold answers (unanswerable) it is 1.0 iff the prediction abstains (``None`` or empty).
    """
    return _score(prediction, gold_answers, _f1_one)


def _best_of_k(predictions: Sequence[str | None], gold_answers: Sequence[str], metric) -> float:  # noqa: ANN001
    given = [p for p in predictions if not abstained(p)]
    if not given:
        return metric(None, gold_answers)
    return max(metric(p, gold_answers) for p in given)


def best_of_k_f1(predictions: Sequence[str | None], gold_answers: Sequence[str]) -> float:
    """The best :func:`f1` over a ranked list of answers (pass the first k).

    An empty list (or one of only empty answers) is an abstention: 1.0 on an unanswerable question. On an
    unanswerable question any non-empty answer in the list scores 0.0.
    """
    return _best_of_k(predictions, gold_answers, f1)


def best_of_k_exact_match(predictions: Sequence[str | None], gold_answers: Sequence[str]) -> float:
    """Like :func:`best_of_k_f1`, with :func:`exact_match`."""
    return _best_of_k(predictions, gold_answers, exact_match)


def _need_gold_docs(gold_doc_ids: Iterable[str]) -> set[str]:
    gold = set(gold_doc_ids)
    if not gold:
        raise ValueError("retrieval metrics are defined only for answerable questions (gold_doc_ids is empty)")
    return gold


def recall_at_k(retrieved_doc_ids: Sequence[str], gold_doc_ids: Iterable[str], k: int) -> float:
    """1.0 if any gold document is among the first ``k`` retrieved, else 0.0.

    Raises ValueError for ``k < 1`` or an unanswerable question (no gold documents).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    gold = _need_gold_docs(gold_doc_ids)
    return float(any(d in gold for d in retrieved_doc_ids[:k]))


def reciprocal_rank(retrieved_doc_ids: Sequence[str], gold_doc_ids: Iterable[str]) -> float:
    """1 / (1-based rank of the first gold document retrieved), 0.0 if none is retrieved.

    Raises ValueError for an unanswerable question (no gold documents).
    """
    gold = _need_gold_docs(gold_doc_ids)
    for rank, d in enumerate(retrieved_doc_ids, start=1):
        if d in gold:
            return 1.0 / rank
    return 0.0


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation, as ``numpy.percentile`` computes it."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100 or math.isnan(p):
        raise ValueError(f"p must be between 0 and 100, not {p}")
    pos = (len(xs) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


_CITATION_FIELDS = ("start", "end", "quote", "quote_start", "quote_end")


def citation_valid(citation: Any, source_text: str) -> bool:
    """Check one citation against the text of the document it cites (the citation contract).

    ``citation`` is a :class:`rag.types.Citation` or a mapping with the same keys (the answer JSON). Valid
    iff all offsets are integers, ``0 <= quote_start <= start < end <= quote_end <= len(source_text)`` and
    ``source_text[quote_start:quote_end] == quote``.
    """
    try:
        if isinstance(citation, Mapping):
            start, end, quote, q_start, q_end = (citation[f] for f in _CITATION_FIELDS)
        else:
            start, end, quote, q_start, q_end = (getattr(citation, f) for f in _CITATION_FIELDS)
    except (KeyError, AttributeError):
        return False
    offsets = (start, end, q_start, q_end)
    if not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets) or not isinstance(quote, str):
        return False
    if not 0 <= q_start <= start < end <= q_end <= len(source_text):
        return False
    return source_text[q_start:q_end] == quote


def aggregate(rows: Iterable[Mapping[str, float | None]]) -> dict[str, float | int | None]:
    """Mean of each metric over per-question rows, skipping ``None`` (metric undefined for that question).

    Returns ``{"n": number of rows, <metric>: mean or None, "n_<metric>": how many rows defined it}``.

    >>> aggregate([{"f1": 1.0, "recall_at_5": None}, {"f1": 0.5, "recall_at_5": 1.0}])["f1"]
    0.75
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    n = 0
    for row in rows:
        n += 1
        for key, value in row.items():
            counts.setdefault(key, 0)
            sums.setdefault(key, 0.0)
            if value is not None:
                sums[key] += float(value)
                counts[key] += 1
    out: dict[str, float | int | None] = {"n": n}
    for key in sums:
        out[key] = sums[key] / counts[key] if counts[key] else None
        out[f"n_{key}"] = counts[key]
    return out
