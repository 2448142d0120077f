"""Calibrating answer scores (pure functions): Platt scaling, expected calibration error, thresholds.

"Right" means the shown (top) answer has token F1 >= 0.5 against the gold answers; an answer to an
unanswerable question is never right. A calibrated score ``p`` then reads: about ``p`` of the answers
shown with this score are right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RIGHT_F1 = 0.5


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_logistic(features: np.ndarray, right: Sequence[bool], iterations: int = 200) -> np.ndarray:
    """Weights ``w`` (last one the bias) of ``sigmoid(features @ w[:-1] + w[-1])`` maximising the
    likelihood of ``right`` (Newton steps, with Platt's smoothed targets so a separable set stays finite)."""
    x = np.column_stack([np.asarray(features, dtype=np.float64), np.ones(len(right))])
    y = np.asarray(right, dtype=np.float64)
    w = np.zeros(x.shape[1])
    w[0] = 1.0
    if len(y) == 0 or y.min() == y.max():
        w[0] = 1.0
        return w
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ w)))
        g = x.T @ (p - t)
        h = (x * (p * (1 - p) + 1e-9)[:, None]).T @ x
        step = np.linalg.solve(h + 1e-9 * np.eye(len(w)), g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def fit_platt(raw: Sequence[float], right: Sequence[bool], iterations: int = 200) -> tuple[float, float]:
    """``(a, b)`` of ``sigmoid(a · logit(raw) + b)`` maximising the likelihood of ``right``."""
    w = fit_logistic(_logit(np.asarray(raw, dtype=np.float64))[:, None], right, iterations)
    return float(w[0]), float(w[1])


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    count: int
    mean_score: float
    right: float  # share of answers in the bin that are right


def reliability(scores: Sequence[float], right: Sequence[bool], bins: int = 10) -> list[Bin]:
    """Equal-width score bins with how many answers are right in each (empty bins left out)."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(right, dtype=np.float64)
    out = []
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        sel = (s >= lo) & ((s < hi) if i < bins - 1 else (s <= hi))
        if sel.any():
            out.append(Bin(lo, hi, int(sel.sum()), float(s[sel].mean()), float(r[sel].mean())))
    return out


def expected_calibration_error(scores: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Mean |score - share right| over the bins, weighted by how many answers fall in each."""
    table = reliability(scores, right, bins)
    n = sum(b.count for b in table)
    return sum(b.count * abs(b.mean_score - b.right) for b in table) / n if n else 0.0


def overall_f1(scores: Sequence[float], answer_f1: Sequence[float], answerable: Sequence[bool], t: float) -> float:
    """Mean SQuAD 2.0 F1 when answers scoring below ``t`` are withheld (abstaining is right iff unanswerable)."""
    total = 0.0
    for s, f, a in zip(scores, answer_f1, answerable):
        total += (f if a else 0.0) if s >= t else (0.0 if a else 1.0)
    return total / max(1, len(scores))


def best_threshold(
    scores: Sequence[float], answer_f1: Sequence[float], answerable: Sequence[bool], steps: int = 100
) -> tuple[float, float]:
    """``(threshold, F1)`` maximising :func:`overall_f1` over ``steps + 1`` thresholds in [0, 1]."""
    curve = [(i / steps, overall_f1(scores, answer_f1, answerable, i / steps)) for i in range(steps + 1)]
    return max(curve, key=lambda tf: (tf[1], -tf[0]))


def markdown_reliability(table: Sequence[Bin]) -> str:
    rows = ["| score bin | answers | mean score | right |", "|---|---:|---:|---:|"]
    rows += [f"| {b.lo:.1f}–{b.hi:.1f} | {b.count} | {b.mean_score:.3f} | {b.right:.3f} |" for b in table]
    return "\n".join(rows)
