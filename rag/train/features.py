"""Training windows -> token features (ids, answer token positions), and length-bucketed batches."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.reader.qa_windows import Encoded, assemble, special_ids, token_span
from rag.train.windows import TrainWindow, WindowKind


@dataclass(frozen=True)
class Feature:
    enc: Encoded
    start: int  # answer's first and last token; 0, 0 when the window does not answer
    end: int
    has_answer: bool
    kind: WindowKind
    group: int = 0  # the question's windows share it (see rag/train/windows.py)


def make_features(
    windows: Sequence[TrainWindow],
    tokenizer,
    max_length: int,
    max_question_tokens: int,
    batch: int = 2048,  # noqa: ANN001
) -> list[Feature]:
    """Encode every window; an answer cut off by ``max_length`` drops its window (it would teach a wrong span)."""
    specials = special_ids(tokenizer)
    out: list[Feature] = []
    for b in range(0, len(windows), batch):
        part = windows[b : b + batch]
        qs = tokenizer.encode_batch([w.question for w in part], add_special_tokens=False)
        ws = tokenizer.encode_batch([w.context[w.window[0] : w.window[1]] for w in part], add_special_tokens=False)
        for w, q, p in zip(part, qs, ws):
            enc = assemble(q.ids[:max_question_tokens], p.ids, p.offsets, w.window[0], max_length, specials)
            if w.answer is None:
                out.append(Feature(enc, 0, 0, False, w.kind, w.group))
                continue
            span = token_span(enc, *w.answer)
            if span is not None:
                out.append(Feature(enc, span[0], span[1], True, w.kind, w.group))
    return out


def batches(features: Sequence[Feature], batch_size: int, seed: int, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of feature indices of similar length (sorted inside pools of ``pool`` batches), so
    dynamic padding pads little; the batch order is shuffled again. Deterministic for a seed."""
    rng = random.Random(seed)
    order = list(range(len(features)))
    rng.shuffle(order)
    out: list[list[int]] = []
    size = batch_size * pool
    for p in range(0, len(order), size):
        group = sorted(order[p : p + size], key=lambda i: len(features[i].enc))
        out.extend(group[b : b + batch_size] for b in range(0, len(group), batch_size))
    rng.shuffle(out)
    return out


def group_batches(features: Sequence[Feature], batch_size: int, seed: int, pool: int = 50) -> list[list[int]]:
    """Like :func:`batches`, but a question's windows (one ``group``) always travel in one batch, next to
    each other, so the loss can normalise over them together. A batch holds whole groups, at most
    ``batch_size`` windows (a larger group is a batch of its own). Deterministic for a seed."""
    rng = random.Random(seed)
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        groups.setdefault(f.group, []).append(i)
    order = list(groups.values())
    rng.shuffle(order)
    out: list[list[int]] = []
    size = max(1, batch_size // 3) * pool  # groups per pool (about three windows a group)
    for p in range(0, len(order), size):
        part = sorted(order[p : p + size], key=lambda g: max(len(features[i].enc) for i in g))
        cur: list[int] = []
        for g in part:
            if cur and len(cur) + len(g) > batch_size:
                out.append(cur)
                cur = []
            cur.extend(g)
        if cur:
            out.append(cur)
    rng.shuffle(out)
    return out


def epoch_batches(
    features: Sequence[Feature], batch_size: int, seed: int, grouped: bool = False
) -> Iterator[list[int]]:
    """Batches forever, epoch after epoch (each epoch shuffled with its own seed); ``grouped``: whole
    questions per batch (:func:`group_batches`)."""
    make = group_batches if grouped else batches
    epoch = 0
    while True:
        yield from make(features, batch_size, seed * 1000 + epoch)
        epoch += 1
