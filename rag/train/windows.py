"""Training windows: what the reader will see at run time, with the answer's place (or none) marked.

At run time the learned reader reads a few *sentence windows* (a sentence the ranker picked, with its
neighbours). So training does not read whole paragraphs; it reads sentence windows of four kinds:

- ``answer``: the answer's sentence with 0-2 neighbours on each side (so the answer sits in the middle or
  at an edge, as when the ranker picked a neighbour);
- ``neighbour``: a window of the same paragraph that does not hold the answer ("not in this window");
- ``retrieved``: the best window of another paragraph that the product's own BM25 retrieval ranks top for
  the question and that does not contain the answer text (open-corpus distractors);
- ``unanswerable``: SQuAD 2.0's real unanswerable questions, read at the window most like the question;
- ``swapped``: an answerable question with one of its names or numbers swapped for another name or number
  of the passage, read at the answer's window, labelled unanswerable (a synthetic SQuAD 2.0-style negative).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rag.chunking import split_sentences
from rag.text import terms
from rag.train.data import Example
from rag.types import Span

WindowKind = Literal["answer", "neighbour", "retrieved", "unanswerable", "swapped"]
NEIGHBOURS = (0, 1, 1, 1, 2)  # neighbours each side of a training window's sentence, drawn uniformly


@dataclass(frozen=True)
class TrainWindow:
    question: str
    context: str
    window: tuple[int, int]  # character range of the window in context
    answer: tuple[int, int] | None  # character span in context; None = the window does not answer
    kind: WindowKind
    qid: str


@dataclass(frozen=True)
class WindowRates:
    neighbour: float = 0.25  # share of answerable questions that also give a same-paragraph negative
    retrieved: float = 0.25  # ... a retrieved negative from another paragraph
    swapped: float = 0.06  # ... a swapped-entity unanswerable question


def sentence_spans(context: str) -> list[Span]:
    spans = split_sentences(context)
    return spans or [Span(0, len(context))]


def _char_window(sents: Sequence[Span], lo: int, hi: int) -> tuple[int, int]:
    return sents[lo].start, sents[hi - 1].end


def overlap_sentence(question: str, context: str, sents: Sequence[Span]) -> int:
    """The sentence sharing most analysed terms with the question (the first on a tie)."""
    q = set(terms(question))
    scores = [len(q & set(terms(context[s.start : s.end]))) for s in sents]
    return max(range(len(sents)), key=lambda i: (scores[i], -i))


def answer_window(ex: Example, sents: Sequence[Span], rng: random.Random) -> TrainWindow | None:
    start, end = ex.answers[0]
    touched = [i for i, s in enumerate(sents) if s.start < end and s.end > start]
    if not touched:
        return None
    lo = max(0, touched[0] - rng.choice(NEIGHBOURS))
    hi = min(len(sents), touched[-1] + 1 + rng.choice(NEIGHBOURS))
    ws, we = _char_window(sents, lo, hi)
    if not (ws <= start and end <= we):
        return None
    return TrainWindow(ex.question, ex.context, (ws, we), (start, end), "answer", ex.qid)


def neighbour_window(ex: Example, sents: Sequence[Span], rng: random.Random) -> TrainWindow | None:
    spans = ex.answers
    free = []
    for c in range(len(sents)):
        lo, hi = max(0, c - 1), min(len(sents), c + 2)
        ws, we = _char_window(sents, lo, hi)
        if all(e <= ws or s >= we for s, e in spans):
            free.append((ws, we))
    if not free:
        return None
    return TrainWindow(ex.question, ex.context, rng.choice(free), None, "neighbour", ex.qid)


def centred_window(question: str, context: str, sents: Sequence[Span]) -> tuple[int, int]:
    c = overlap_sentence(question, context, sents)
    return _char_window(sents, max(0, c - 1), min(len(sents), c + 2))


_SWAPPABLE = re.compile(r"\b(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+)*|\d[\d,.]*)\b")


def swapped_question(ex: Example, rng: random.Random) -> str | None:
    """The question with one of its names/numbers replaced by another of the passage's, or None if none fits.

    Only names and numbers that do not occur in the answer are swapped in, and sentence-initial question
    words ("What", "Who") are never taken for names.
    """
    answers = [ex.context[s:e] for s, e in ex.answers]
    q_names = [m for m in _SWAPPABLE.finditer(ex.question) if m.start() > 0]
    if not q_names:
        return None
    target = rng.choice(q_names)
    is_number = target.group()[0].isdigit()
    pool = sorted(
        {
            m.group()
            for m in _SWAPPABLE.finditer(ex.context)
            if m.group()[0].isdigit() == is_number
            and m.group() not in ex.question
            and target.group() not in m.group()
            and not any(m.group() in a for a in answers)
            and (is_number or m.start() > 0 and ex.context[m.start() - 2 : m.start()].strip() not in {".", ""})
        }
    )
    if not pool:
        return None
    return ex.question[: target.start()] + rng.choice(pool) + ex.question[target.end() :]


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w ]", " ", text.lower()).split())


def retrieved_negatives(examples: Sequence[Example], chosen: Sequence[int], k: int = 3) -> dict[int, TrainWindow]:
    """For each chosen answerable example, the top BM25-retrieved window of another paragraph lacking the answer."""
    from rag.retrieval import BM25Retriever, Query

    contexts = list(dict.fromkeys(ex.context for ex in examples))
    where = {c: i for i, c in enumerate(contexts)}
    bm25 = BM25Retriever(contexts)
    normal = [_normal(c) for c in contexts]
    out: dict[int, TrainWindow] = {}
    for i in chosen:
        ex = examples[i]
        answers = [_normal(ex.context[s:e]) for s, e in ex.answers]
        for row, _score in bm25.search(Query.make(ex.question), k + 1):
            if row == where[ex.context] or any(a and a in normal[row] for a in answers):
                continue
            ctx = contexts[row]
            out[i] = TrainWindow(
                ex.question, ctx, centred_window(ex.question, ctx, sentence_spans(ctx)), None, "retrieved", ex.qid
            )
            break
    return out


def build_windows(
    examples: Sequence[Example], seed: int, rates: WindowRates = WindowRates(), retrieval: bool = True
) -> list[TrainWindow]:
    """The training windows of ``examples`` (deterministic for a seed), in example order."""
    rng = random.Random(seed)
    sents_of: dict[str, list[Span]] = {}
    draws = [(rng.random(), rng.random(), rng.random()) for _ in examples]
    answerable = [i for i, ex in enumerate(examples) if ex.answerable]
    retrieved = (
        retrieved_negatives(examples, [i for i in answerable if draws[i][1] < rates.retrieved]) if retrieval else {}
    )
    out: list[TrainWindow] = []
    for i, ex in enumerate(examples):
        sents = sents_of.get(ex.context)
        if sents is None:
            sents = sents_of[ex.context] = sentence_spans(ex.context)
        if not ex.answerable:
            out.append(
                TrainWindow(
                    ex.question,
                    ex.context,
                    centred_window(ex.question, ex.context, sents),
                    None,
                    "unanswerable",
                    ex.qid,
                )
            )
            continue
        win = answer_window(ex, sents, rng)
        if win is None:
            continue
        out.append(win)
        if draws[i][0] < rates.neighbour and (neg := neighbour_window(ex, sents, rng)):
            out.append(neg)
        if i in retrieved:
            out.append(retrieved[i])
        if draws[i][2] < rates.swapped and (q := swapped_question(ex, rng)):
            out.append(TrainWindow(q, ex.context, win.window, None, "swapped", ex.qid))
    return out
