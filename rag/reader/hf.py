"""A reader backed by a Hugging Face extractive QA model (``AutoModelForQuestionAnswering``, SQuAD-style).

Each retrieved passage (and each of its near-duplicates with a different text) is read as a
(question, passage) pair. Passages longer than ``hf_max_length`` tokens are cut into overlapping windows
(``hf_doc_stride`` tokens shared); all windows are batched through the model.

In each window, a span ``(i, j)`` of passage tokens (``i <= j``, at most ``hf_max_answer_tokens`` long)
is a candidate when its start+end logit beats the window's no-answer logit (the CLS token's) by more than
``hf_null_margin``, as in SQuAD 2.0. Its score is ``p_start(i) · p_end(j)``, with both probabilities a
softmax over the window's passage tokens and the CLS token, so the no-answer mass lowers every span's
score (0..1). Candidates are widened to whole words, mapped through the tokenizer's offsets to exact
characters of the document and trimmed of whitespace; a window keeps its best ones that do not overlap a
better one. The quote is the sentence holding the span (extended to every sentence the span touches).
:func:`merge_predictions` then groups them by answer text and withholds answers scoring below
``abstain_threshold``.

torch and transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.config import Settings
from rag.errors import ModelError
from rag.reader.answers import SpanPrediction, merge_predictions
from rag.retrieval import Query
from rag.types import Answer, Chunk, Hit

if TYPE_CHECKING:
    from rag.store import IndexData

FIX = (
    "Set RAG_HF_READER_MODEL to a local directory with a SQuAD-trained model (config.json, weights, tokenizer), "
    "or use RAG_READER=heuristic."
)
CANDIDATES_PER_SPAN = 20  # span pairs looked at for each one kept, before overlapping ones are dropped


# ------------------------------------------------------------------------------------------ loading
def load_qa_model(path: str | Path | None) -> tuple[Any, Any]:
    """Load ``(model, fast tokenizer)`` from a local directory; every problem is a :class:`ModelError`."""
    if not path:
        raise ModelError(f"RAG_READER=hf needs a reader model. {FIX}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelError(f"The reader model directory {str(p)!r} does not exist. {FIX}")
    if not (p / "config.json").is_file():
        raise ModelError(f"The reader model directory {str(p)!r} has no config.json. {FIX}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            str(p), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear message
        raise ModelError(f"Cannot load reader model {str(p)!r} ({exc.__class__.__name__}: {exc}). {FIX}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"The tokenizer of reader model {str(p)!r} is not a fast (Rust) tokenizer, which is needed to map "
            f"answers back to characters; add a tokenizer.json to the directory. {FIX}"
        )
    prefix = getattr(model, "base_model_prefix", "")
    head_missing = sorted(k for k in info.get("missing_keys", ()) if not (prefix and k.startswith(prefix)))
    if head_missing:
        raise ModelError(
            f"{str(p)!r} is not a trained question-answering model: its QA head ({', '.join(head_missing)}) is "
            f"missing, so answers would be random. {FIX}"
        )
    model.eval()
    return model, tokenizer


# ------------------------------------------------------------------------------------- pure functions
def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context: np.ndarray,
    null_index: int,
    max_answer_tokens: int,
    n: int,
    null_margin: float = 0.0,
) -> list[tuple[int, int, float]]:
    """The ``n`` best ``(start_token, end_token, probability)`` spans of one window, best first.

    ``context`` marks the passage tokens. A span must lie inside the passage, with ``start <= end`` and at
    most ``max_answer_tokens`` tokens, and its start+end logit must exceed the null (``null_index``)
    start+end logit by more than ``null_margin``. The probability is ``p_start · p_end``, each a softmax
    over the passage tokens and the null token.
    """
    pos = np.flatnonzero(context)
    if pos.size == 0 or n <= 0:
        return []
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    norm = np.append(pos, null_index)
    lp_start = _log_softmax(start_logits[norm])[:-1]
    lp_end = _log_softmax(end_logits[norm])[:-1]
    null_logit = start_logits[null_index] + end_logits[null_index]
    gap = pos[None, :] - pos[:, None]  # end token - start token
    valid = (gap >= 0) & (gap < max_answer_tokens)
    valid &= start_logits[pos][:, None] + end_logits[pos][None, :] > null_logit + null_margin
    scores = np.where(valid, lp_start[:, None] + lp_end[None, :], -np.inf).ravel()
    k = min(n, int(valid.sum()))
    if k == 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    width = len(pos)
    return [(int(pos[t // width]), int(pos[t % width]), float(np.exp(scores[t]))) for t in top]


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` so that ``text[start:end]`` has no leading or trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def quote_bounds(chunk: Chunk, start: int, end: int) -> tuple[int, int]:
    """The sentences of ``chunk`` that the absolute span ``[start, end)`` touches (the chunk if none does)."""
    touched = [s for s in chunk.sentences if s.start < end and s.end > start]
    if not touched:
        return min(chunk.start, start), max(chunk.end, end)
    return min(touched[0].start, start), max(touched[-1].end, end)


# ------------------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class _Window:
    """One model input: a question and a stretch of one context."""

    context: int  # index of the context it was cut from
    ids: list[int]
    offsets: list[tuple[int, int]]  # character range of each token in its own text
    passage: np.ndarray  # bool: which tokens belong to the context
    words: list[int | None]  # the tokenizer's word of each token
    null_index: int  # the CLS token, whose logits score "no answer"
    extra: dict[str, list[int]]  # other model inputs (token_type_ids)
    first: int  # first and last passage token
    last: int
    at_start: bool  # the window holds the beginning / the end of its context
    at_end: bool

    def whole_words(self, i: int, j: int) -> tuple[int, int] | None:
        """Widen tokens ``i..j`` to whole words, so no answer ends inside a word ("Müll" for "Müller").

        None when the span reaches a window edge that cuts the context: its words may be cut too, and the
        neighbouring window, which overlaps this one by the stride, reads them whole.
        """
        w = self.words
        while i > 0 and self.passage[i - 1] and w[i] is not None and w[i - 1] == w[i]:
            i -= 1
        while j + 1 < len(w) and self.passage[j + 1] and w[j] is not None and w[j + 1] == w[j]:
            j += 1
        if (i == self.first and not self.at_start) or (j == self.last and not self.at_end):
            return None
        return i, j


class HFReader:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        documents: dict[str, str],
        *,
        threshold: float,
        max_length: int = 384,
        doc_stride: int = 128,
        max_answer_tokens: int = 30,
        max_question_tokens: int = 64,
        batch_size: int = 16,
        null_margin: float = 0.0,
    ) -> None:
        self.model, self.tokenizer, self.docs = model, tokenizer, documents
        self.threshold = threshold
        limit = getattr(tokenizer, "model_max_length", None)
        if not isinstance(limit, int) or limit > 100_000:
            limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, int(limit))
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        room = self.max_length - specials - doc_stride  # question tokens + passage tokens beyond the stride
        if room < 2:
            raise ModelError(
                f"RAG_HF_DOC_STRIDE={doc_stride} leaves no room in windows of {self.max_length} tokens; "
                "lower RAG_HF_DOC_STRIDE (about a third of RAG_HF_MAX_LENGTH works well)."
            )
        # the tokenizer needs more passage tokens per window than the stride
        self.max_question_tokens = max(1, min(max_question_tokens, room - 1))
        self.doc_stride = doc_stride
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self.null_margin = null_margin
        self._lock = threading.Lock()  # one forward pass at a time; the Rust tokenizer is not re-entrant either

    @classmethod
    def from_settings(cls, settings: Settings, index: IndexData) -> HFReader:
        model, tokenizer = load_qa_model(settings.hf_reader_model)
        return cls(
            model,
            tokenizer,
            {d: doc.text for d, doc in index.documents.items()},
            threshold=settings.abstain_threshold,
            max_length=settings.hf_max_length,
            doc_stride=settings.hf_doc_stride,
            max_answer_tokens=settings.hf_max_answer_tokens,
            max_question_tokens=settings.hf_max_question_tokens,
            batch_size=settings.hf_batch_size,
            null_margin=settings.hf_null_margin,
        )

    # ------------------------------------------------------------------------------------ model
    def _cut_question(self, question: str) -> str:
        enc = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= self.max_question_tokens:
            return question
        return question[: offsets[self.max_question_tokens - 1][1]]

    def predict(self, question: str, contexts: Sequence[str], per_window: int) -> list[list[tuple[int, int, float]]]:
        """For each context, ``(start_char, end_char, score)`` spans into it (trimmed, best per window)."""
        out: list[list[tuple[int, int, float]]] = [[] for _ in contexts]
        if not contexts:
            return out
        with self._lock:
            windows = self._windows(question, contexts)
            logits = self._forward(windows)
        for win, (start, end) in zip(windows, logits):
            text = contexts[win.context]
            taken: list[tuple[int, int]] = []
            cands = best_spans(
                start,
                end,
                win.passage,
                win.null_index,
                self.max_answer_tokens,
                per_window * CANDIDATES_PER_SPAN,
                self.null_margin,
            )
            for i, j, score in cands:
                widened = win.whole_words(i, j)
                if widened is None:
                    continue
                s, e = trim(text, win.offsets[widened[0]][0], win.offsets[widened[1]][1])
                if s >= e or any(s < te and e > ts for ts, te in taken):
                    continue
                taken.append((s, e))
                out[win.context].append((s, e, score))
                if len(taken) >= per_window:
                    break
        return out

    def _windows(self, question: str, contexts: Sequence[str]) -> list[_Window]:
        tok = self.tokenizer
        q = self._cut_question(question)
        enc = tok(
            [q] * len(contexts),
            list(contexts),
            truncation="only_second",
            max_length=self.max_length,
            stride=self.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        mapping = enc["overflow_to_sample_mapping"]
        extra_keys = [k for k in ("token_type_ids",) if k in enc and k in tok.model_input_names]
        cls_id = tok.cls_token_id
        windows = []
        for w, ids in enumerate(enc["input_ids"]):
            passage = np.array([s == 1 for s in enc.sequence_ids(w)], dtype=bool)
            null_index = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
            extra = {k: enc[k][w] for k in extra_keys}
            offsets = enc["offset_mapping"][w]
            ctx = int(mapping[w])
            pos = np.flatnonzero(passage)
            first, last = (int(pos[0]), int(pos[-1])) if pos.size else (0, -1)
            at_start = not pos.size or not contexts[ctx][: offsets[first][0]].strip()
            at_end = not pos.size or not contexts[ctx][offsets[last][1] :].strip()
            windows.append(
                _Window(ctx, ids, offsets, passage, enc.word_ids(w), null_index, extra, first, last, at_start, at_end)
            )
        return windows

    def _forward(self, windows: Sequence[_Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Start and end logits of each window, in batches of windows of similar length."""
        import torch

        pad = self.tokenizer.pad_token_id or 0
        order = sorted(range(len(windows)), key=lambda w: len(windows[w].ids))
        results: list[tuple[np.ndarray, np.ndarray]] = [None] * len(windows)  # type: ignore[list-item]
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                batch = order[b : b + self.batch_size]
                width = max(len(windows[w].ids) for w in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                extra: dict[str, torch.Tensor] = {}
                for r, w in enumerate(batch):
                    win = windows[w]
                    ids[r, : len(win.ids)] = torch.tensor(win.ids)
                    mask[r, : len(win.ids)] = 1
                    for k, v in win.extra.items():
                        extra.setdefault(k, torch.zeros((len(batch), width), dtype=torch.long))[r, : len(v)] = (
                            torch.tensor(v)
                        )
                out = self.model(input_ids=ids, attention_mask=mask, **extra)
                start = out.start_logits.float().numpy()
                end = out.end_logits.float().numpy()
                for r, w in enumerate(batch):
                    n = len(windows[w].ids)
                    results[w] = (start[r, :n], end[r, :n])
        return results

    # ------------------------------------------------------------------------------------ reading
    def read(self, query: Query, hits: Sequence[Hit], top_k: int) -> list[Answer]:
        chunks: dict[tuple[str, int, int], Chunk] = {}
        for hit in hits:
            for c in hit.chunks:
                chunks.setdefault((c.doc_id, c.start, c.end), c)
        if not chunks:
            return []
        texts = list(dict.fromkeys(c.text for c in chunks.values()))  # identical copies are read once
        spans = dict(zip(texts, self.predict(query.text, texts, max(1, top_k))))
        preds = []
        for c in chunks.values():
            for s, e, score in spans[c.text]:
                start, end = c.start + s, c.start + e
                qs, qe = quote_bounds(c, start, end)
                preds.append(SpanPrediction(c.doc_id, start, end, qs, qe, min(1.0, max(0.0, score))))
        return merge_predictions(preds, self.docs, top_k, self.threshold)
