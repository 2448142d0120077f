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

Every window carries its ``group``: the windows of one question (its answer window and its negatives) form
a group, so training can normalise the span scores over all of them at once (shared normalisation, Clark &
Gardner 2018), as the reader compares spans across the windows it reads. A share of windows (``title``)
gets the article's title as a heading line above it: documents have headings, SQuAD paragraphs do not,
and a heading that names the question's topic is rarely its answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    group: int = 0  # the windows of one question share it (shared normalisation)


@dataclass(frozen=True)
class WindowRates:
    neighbour: float = 0.25  # share of answerable questions that also give same-paragraph negatives
    retrieved: float = 0.25  # ... retrieved negatives from other paragraphs
    swapped: float = 0.06  # ... a swapped-entity unanswerable question
    neighbours_each: int = 1  # at most this many same-paragraph negatives per such question
    retrieved_each: int = 1  # ... retrieved negatives
    title: float = 0.0  # share of windows given the article's title as a heading line above them


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


def neighbour_windows(ex: Example, sents: Sequence[Span], rng: random.Random, k: int = 1) -> list[TrainWindow]:
    """Up to ``k`` distinct windows of the same paragraph that do not hold the answer (drawn with ``rng``)."""
    spans = ex.answers
    free = []
    for c in range(len(sents)):
        lo, hi = max(0, c - 1), min(len(sents), c + 2)
        ws, we = _char_window(sents, lo, hi)
        if all(e <= ws or s >= we for s, e in spans) and (ws, we) not in free:
            free.append((ws, we))
    if not free:
        return []
    picked = [rng.choice(free)] if k == 1 else rng.sample(free, min(k, len(free)))
    return [TrainWindow(ex.question, ex.context, w, None, "neighbour", ex.qid) for w in picked]


def neighbour_window(ex: Example, sents: Sequence[Span], rng: random.Random) -> TrainWindow | None:
    found = neighbour_windows(ex, sents, rng, 1)
    return found[0] if found else None


def with_heading(win: TrainWindow, title: str) -> TrainWindow:
    """The window with ``title`` as a heading line right above it (a new context: heading + window text)."""
    heading = " ".join(title.replace("_", " ").split())
    if not heading:
        return win
    ws, we = win.window
    context = heading + "\n" + win.context[ws:we]
    shift = len(heading) + 1 - ws
    answer = (win.answer[0] + shift, win.answer[1] + shift) if win.answer else None
    return replace(win, context=context, window=(0, len(context)), answer=answer)


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


RetrievedRows = dict[int, list[int]]  # example index -> rows of ``distinct_contexts`` (best first)


def distinct_contexts(examples: Sequence[Example]) -> list[str]:
    return list(dict.fromkeys(ex.context for ex in examples))


def retrieved_rows(examples: Sequence[Example], chosen: Sequence[int], each: int = 1, k: int = 3) -> RetrievedRows:
    """For each chosen answerable example, the ``each`` best BM25-retrieved paragraphs (rows of
    :func:`distinct_contexts`) other than its own that lack the answer text, among the top ``k + each``."""
    from rag.retrieval import BM25Retriever, Query

    contexts = distinct_contexts(examples)
    where = {c: i for i, c in enumerate(contexts)}
    bm25 = BM25Retriever(contexts)
    normal = [_normal(c) for c in contexts]
    out: RetrievedRows = {}
    for i in chosen:
        ex = examples[i]
        answers = [_normal(ex.context[s:e]) for s, e in ex.answers]
        rows = []
        for row, _score in bm25.search(Query.make(ex.question), k + each):
            if row == where[ex.context] or any(a and a in normal[row] for a in answers):
                continue
            rows.append(row)
            if len(rows) >= each:
                break
        if rows:
            out[i] = rows
    return out


def retrieved_negatives(
    examples: Sequence[Example], chosen: Sequence[int], k: int = 3, each: int = 1, rows: RetrievedRows | None = None
) -> dict[int, list[TrainWindow]]:
    """For each chosen answerable example, the windows most like its question in the ``each`` best
    BM25-retrieved paragraphs lacking the answer (``rows``: :func:`retrieved_rows`, worked out if None)."""
    contexts = distinct_contexts(examples)
    if rows is None:
        rows = retrieved_rows(examples, chosen, each, k)
    out: dict[int, list[TrainWindow]] = {}
    for i in chosen:
        ex = examples[i]
        wins = []
        for row in rows.get(i, [])[:each]:
            ctx = contexts[row]
            wins.append(
                TrainWindow(
                    ex.question, ctx, centred_window(ex.question, ctx, sentence_spans(ctx)), None, "retrieved", ex.qid
                )
            )
        if wins:
            out[i] = wins
    return out


def chosen_for_retrieval(examples: Sequence[Example], seed: int, rates: WindowRates) -> list[int]:
    """The answerable examples that get retrieved negatives (the same draw :func:`build_windows` makes)."""
    rng = random.Random(seed)
    draws = [(rng.random(), rng.random(), rng.random()) for _ in examples]
    return [i for i, ex in enumerate(examples) if ex.answerable and draws[i][1] < rates.retrieved]


def build_windows(
    examples: Sequence[Example],
    seed: int,
    rates: WindowRates = WindowRates(),
    retrieval: bool = True,
    rows: RetrievedRows | None = None,
) -> list[TrainWindow]:
    """The training windows of ``examples`` (deterministic for a seed), in example order, grouped by question.

    ``rows``: the retrieved paragraphs (:func:`retrieved_rows` of :func:`chosen_for_retrieval`), when worked
    out before (they cost most of the preparation time); found here when None.
    """
    rng = random.Random(seed)
    sents_of: dict[str, list[Span]] = {}
    draws = [(rng.random(), rng.random(), rng.random()) for _ in examples]
    chosen = chosen_for_retrieval(examples, seed, rates)
    retrieved = retrieved_negatives(examples, chosen, each=rates.retrieved_each, rows=rows) if retrieval else {}
    title_rng = random.Random(seed + 1)  # its own stream: the other draws stay as they were without titles
    out: list[TrainWindow] = []
    group = 0

    def add(win: TrainWindow, ex: Example) -> None:
        if rates.title > 0 and title_rng.random() < rates.title:
            win = with_heading(win, ex.title)
        out.append(replace(win, group=group))

    for i, ex in enumerate(examples):
        sents = sents_of.get(ex.context)
        if sents is None:
            sents = sents_of[ex.context] = sentence_spans(ex.context)
        if not ex.answerable:
            window = centred_window(ex.question, ex.context, sents)
            add(TrainWindow(ex.question, ex.context, window, None, "unanswerable", ex.qid), ex)
            group += 1
            continue
        win = answer_window(ex, sents, rng)
        if win is None:
            continue
        add(win, ex)
        if draws[i][0] < rates.neighbour:
            for neg in neighbour_windows(ex, sents, rng, rates.neighbours_each):
                add(neg, ex)
        for neg in retrieved.get(i, []):
            add(neg, ex)
        group += 1
        if draws[i][2] < rates.swapped and (q := swapped_question(ex, rng)):
            add(TrainWindow(q, ex.context, win.window, None, "swapped", ex.qid), ex)
            group += 1
    return out
