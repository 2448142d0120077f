"""Question + sentence-window inputs of the learned reader, shared by training and reading (no torch).

A *window* is a run of whole sentences of one text (the sentence the reader is looking at and its
neighbours). It is encoded as ``[CLS] question [SEP] window [SEP]`` with the bundled model's WordPiece
tokenizer (the Rust ``tokenizers`` library), keeping each window token's character range in the text, so
a predicted token span maps back to exact characters. Training builds its windows with the same
functions, so the model sees at training time what it reads at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.types import Span


@dataclass(frozen=True)
class Encoded:
    """One model input. ``offsets[i]`` is the absolute character range of token ``i`` (``(0, 0)`` for
    the question and special tokens); ``first``..``last`` are the window's tokens."""

    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    first: int
    last: int
    truncated: bool  # the window did not fit whole

    def __len__(self) -> int:
        return len(self.ids)


def load_tokenizer(path: str | Path) -> Any:  # noqa: ANN401 - a tokenizers.Tokenizer
    """The fast tokenizer in ``tokenizer.json``, with the file's own padding and truncation switched off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def window_around(sentences: Sequence[Span], center: int, before: int = 1, after: int = 1) -> tuple[int, int]:
    """The sentence index range ``[lo, hi)`` of sentence ``center`` with up to ``before``/``after`` neighbours."""
    lo = max(0, center - before)
    hi = min(len(sentences), center + after + 1)
    return lo, hi


def encode_windows(
    tokenizer: Any,  # noqa: ANN401
    question: str,
    texts: Sequence[str],
    windows: Sequence[tuple[int, int]],
    max_length: int,
    max_question_tokens: int,
) -> list[Encoded]:
    """Encode ``question`` with each ``texts[i][windows[i][0]:windows[i][1]]``, at most ``max_length`` tokens.

    The question keeps its first ``max_question_tokens`` tokens; a window longer than the room left is cut
    at the end (``truncated``). Offsets are absolute in ``texts[i]``.
    """
    q_ids = tokenizer.encode(question, add_special_tokens=False).ids[:max_question_tokens]
    pieces = tokenizer.encode_batch([t[s:e] for t, (s, e) in zip(texts, windows)], add_special_tokens=False)
    specials = special_ids(tokenizer)
    return [assemble(q_ids, p.ids, p.offsets, ws, max_length, specials) for p, (ws, _we) in zip(pieces, windows)]


def special_ids(tokenizer: Any) -> tuple[int, int]:  # noqa: ANN401
    return tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")


def assemble(
    q_ids: Sequence[int],
    w_ids: Sequence[int],
    w_offsets: Sequence[tuple[int, int]],
    window_start: int,
    max_length: int,
    specials: tuple[int, int],
) -> Encoded:
    """``[CLS] question [SEP] window [SEP]``, the window cut to the room left; offsets made absolute."""
    cls_id, sep_id = specials
    room = max(1, max_length - len(q_ids) - 3)
    ids = (cls_id, *q_ids, sep_id, *w_ids[:room], sep_id)
    n_q = len(q_ids) + 2
    n_w = min(room, len(w_ids))
    type_ids = (0,) * n_q + (1,) * (n_w + 1)
    offsets = ((0, 0),) * n_q + tuple((window_start + a, window_start + b) for a, b in w_offsets[:room]) + ((0, 0),)
    return Encoded(ids, type_ids, offsets, n_q, n_q + n_w - 1, len(w_ids) > room)


def token_span(enc: Encoded, start: int, end: int) -> tuple[int, int] | None:
    """The window tokens covering characters ``[start, end)``, or None when they are not all in the input."""
    first = last = None
    for i in range(enc.first, enc.last + 1):
        a, b = enc.offsets[i]
        if b > start and a < end:
            if first is None:
                first = i
            last = i
    if first is None or last is None:
        return None
    if enc.offsets[first][0] > start or enc.offsets[last][1] < end:
        return None  # the answer runs past the window's tokens
    return first, last


def batch_arrays(encs: Sequence[Encoded], pad_id: int = 0) -> dict[str, np.ndarray]:
    """Pad a batch to its longest input (dynamic padding): ``input_ids``, ``attention_mask``, ``token_type_ids``."""
    width = max(len(e) for e in encs)
    ids = np.full((len(encs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encs), width), dtype=np.int64)
    types = np.zeros((len(encs), width), dtype=np.int64)
    for r, e in enumerate(encs):
        n = len(e)
        ids[r, :n], mask[r, :n], types[r, :n] = e.ids, 1, e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def best_window_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, enc: Encoded, max_answer_tokens: int, n: int
) -> list[tuple[int, int, float]]:
    """The ``n`` best ``(first_token, last_token, p_start · p_end)`` spans inside the window, best first.

    Probabilities are a softmax over the window's tokens only: whether the window answers at all is the
    separate answerability score, so a span's probability says which span, not whether.
    """
    lo, hi = enc.first, enc.last + 1
    if hi <= lo or n <= 0:
        return []
    s = np.asarray(start_logits[lo:hi], dtype=np.float64)
    e = np.asarray(end_logits[lo:hi], dtype=np.float64)
    ls = s - s.max() - np.log(np.exp(s - s.max()).sum())
    le = e - e.max() - np.log(np.exp(e - e.max()).sum())
    m = hi - lo
    gap = np.arange(m)[None, :] - np.arange(m)[:, None]
    valid = (gap >= 0) & (gap < max_answer_tokens)
    scores = np.where(valid, ls[:, None] + le[None, :], -np.inf).ravel()
    k = min(n, int(valid.sum()))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(lo + int(t // m), lo + int(t % m), float(np.exp(scores[t]))) for t in top]


def window_shares(
    start_logits: np.ndarray | Sequence[np.ndarray], end_logits: np.ndarray | Sequence[np.ndarray], encs: Sequence[Encoded]
) -> np.ndarray:
    """Per window, the share of the start and of the end probability mass it holds when the softmax runs
    over the tokens of all the windows at once (shared normalisation): ``share_start · share_end``.

    A span's probability under the shared softmax is its in-window probability (:func:`best_window_spans`)
    times its window's share, so spans of different windows compare on one scale; the shares sum to at most
    1 over the windows. The logits: one row per window (a padded array, or one array per window).
    """
    if not encs:
        return np.zeros(0)
    ls = np.array([_logsumexp(start_logits[r][e.first : e.last + 1]) for r, e in enumerate(encs)])
    le = np.array([_logsumexp(end_logits[r][e.first : e.last + 1]) for r, e in enumerate(encs)])
    return np.exp(ls - _logsumexp(ls) + le - _logsumexp(le))


def _logsumexp(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return -np.inf
    m = float(x.max())
    return m + float(np.log(np.exp(x - m).sum()))
