"""Validation while training: read the gold paragraph's best sentence windows, as the reader does at run time.

For each validation question, the windows are those centred on the paragraph's ``windows_per_question``
sentences that share most terms with the question (the run-time reader's windows come from its sentence
ranker in the same way). The prediction is the best span of the window the model thinks most likely to
answer; ``answer_prob`` is that window's answerability. Figures: F1 on answerable questions (always
answering), and F1 over all questions at the best answerability threshold (with that threshold).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.metrics import f1
from rag.reader.qa_windows import Encoded, batch_arrays, best_window_spans, encode_windows
from rag.text import terms
from rag.train.data import Example
from rag.train.windows import sentence_spans

Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ValItem:
    qid: str
    question: str
    context: str
    answers: tuple[str, ...]  # empty = unanswerable
    windows: tuple[tuple[int, int], ...]


def ranked_windows(question: str, context: str, n: int) -> tuple[tuple[int, int], ...]:
    sents = sentence_spans(context)
    q = set(terms(question))
    score = [len(q & set(terms(context[s.start : s.end]))) for s in sents]
    best = sorted(range(len(sents)), key=lambda i: (-score[i], i))[:n]
    out = []
    for c in best:
        w = (sents[max(0, c - 1)].start, sents[min(len(sents) - 1, c + 1)].end)
        if w not in out:
            out.append(w)
    return tuple(out)


def validation_items(examples: Sequence[Example], n: int, seed: int, windows_per_question: int = 3) -> list[ValItem]:
    """``n`` questions drawn with a fixed seed (about SQuAD 2.0's share of unanswerable ones)."""
    rng = random.Random(seed)
    picked = rng.sample(list(examples), min(n, len(examples)))
    return [
        ValItem(
            ex.qid,
            ex.question,
            ex.context,
            tuple(ex.context[s:e] for s, e in ex.answers),
            ranked_windows(ex.question, ex.context, windows_per_question),
        )
        for ex in picked
    ]


@dataclass(frozen=True)
class ValPrediction:
    text: str
    answer_prob: float


def predict(
    items: Sequence[ValItem],
    forward: Forward,
    tokenizer,  # noqa: ANN001
    max_length: int,
    max_question_tokens: int,
    max_answer_tokens: int = 30,
    batch_size: int = 64,
) -> list[ValPrediction]:
    encs: list[tuple[int, Encoded]] = []
    for i, it in enumerate(items):
        for e in encode_windows(
            tokenizer, it.question, [it.context] * len(it.windows), it.windows, max_length, max_question_tokens
        ):
            encs.append((i, e))
    best: dict[int, tuple[float, str]] = {}
    for b in range(0, len(encs), batch_size):
        part = encs[b : b + batch_size]
        start, end, answer = forward(batch_arrays([e for _, e in part]))
        for r, (i, e) in enumerate(part):
            p = 1.0 / (1.0 + np.exp(-float(answer[r])))
            spans = best_window_spans(start[r], end[r], e, max_answer_tokens, 1)
            if not spans:
                continue
            s, t, _ = spans[0]
            text = items[i].context[e.offsets[s][0] : e.offsets[t][1]]
            if i not in best or p > best[i][0]:
                best[i] = (p, text)
    return [ValPrediction(best.get(i, (0.0, ""))[1], best.get(i, (0.0, ""))[0]) for i in range(len(items))]


def scores(items: Sequence[ValItem], preds: Sequence[ValPrediction]) -> dict[str, float]:
    """``f1_answerable``; ``f1`` and ``threshold``: overall F1 at the best answerability threshold."""
    ans = [f1(p.text, it.answers) for it, p in zip(items, preds) if it.answers]
    best_f1, best_t = -1.0, 0.5
    for t in np.linspace(0.05, 0.95, 19):
        total = sum(
            (f1(p.text, it.answers) if p.answer_prob >= t else 0.0) if it.answers else float(p.answer_prob < t)
            for it, p in zip(items, preds)
        )
        if total > best_f1:
            best_f1, best_t = total, float(t)
    return {
        "f1_answerable": 100.0 * float(np.mean(ans)) if ans else 0.0,
        "f1": 100.0 * best_f1 / max(1, len(items)),
        "threshold": best_t,
    }
