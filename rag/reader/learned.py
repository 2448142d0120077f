"""The learned reader (the default): a fine-tuned MiniLM reads the best sentence windows in one batch.

1. The evidence stage (:mod:`rag.evidence`: its sentence ranker mixes dense similarity of sentence and
   passage, idf-weighted term overlap and retrieval rank) picks the best ``windows`` distinct sentences,
   each with its neighbour on both sides (the windows the model was trained on).
2. All windows go through the model in one ONNX Runtime call. Per window: the answerability
   ``p_answer = sigmoid(answer_logit)`` and the best spans with ``p_span = p_start · p_end`` (a softmax
   over the window's tokens). A span's raw score is ``p_answer · p_span``.
3. Spans are widened to whole words, mapped to exact document offsets (the quote is the sentence holding
   the span), copied to every other place where the same sentence occurs, and merged by answer text
   (:func:`rag.reader.answers.merge_predictions`; agreement across sentences adds up).
4. The merged score goes through the model's calibration (fitted on validation: among answers shown with
   score p, about p are right) and answers below ``learned_abstain_threshold`` are withheld.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.evidence import Evidence, Ranked, Window, evidence_from, rank_sentences
from rag.reader.answers import SpanPrediction, merge_predictions
from rag.reader.hf import trim
from rag.reader.learned_model import base_model_path
from rag.reader.qa_windows import (
    Encoded,
    batch_arrays,
    best_window_spans,
    encode_windows,
    load_tokenizer,
    window_shares,
)
from rag.retrieval import Query
from rag.types import Answer, Span

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.evidence import SentenceRanker
    from rag.reader.heuristic import HeuristicReader
    from rag.reader.learned_model import ReaderSession
    from rag.store import IndexData

SPANS_PER_WINDOW = 3


def load_model(settings: Settings) -> ReaderSession:
    """Open the configured reader model (every file checked; a :class:`rag.errors.ModelError` otherwise)."""
    from rag.onnx_export import STAT_CACHE_FILE, cache_root
    from rag.reader.learned_model import PACKAGED, load_reader_model

    return load_reader_model(
        settings.learned_reader_model or PACKAGED,
        base_model_path(settings.reader_base_model),
        settings.onnx_threads,
        digest_cache=cache_root(settings.model_cache_dir) / STAT_CACHE_FILE,
    )


def preload(settings: Settings) -> Future[ReaderSession]:
    """Start opening the reader model on a background thread and return at once.

    ONNX Runtime releases the GIL while it builds a session (~0.2 s), so a cold start that loads the index
    and the embedder meanwhile saves most of that time. Its errors come out of ``.result()``.
    """
    pending: Future[ReaderSession] = Future()

    def work() -> None:
        try:
            pending.set_result(load_model(settings))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the model
            pending.set_exception(exc)

    threading.Thread(target=work, name="rag-reader-load", daemon=True).start()
    return pending


CURRENCY_SIGNS = "$€£¥"


def widen_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow ``[start, end)`` to whole words (a WordPiece span may stop inside one: 'Müll' of 'Müller'), and
    a currency sign to its country prefix ('$1.2 billion' of 'A$1.2 billion', 'US$', 'HK$')."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    if start < end and text[start] in CURRENCY_SIGNS:
        prefix = start
        while prefix > 0 and start - prefix < 3 and text[prefix - 1].isupper():
            prefix -= 1
        if prefix < start and (prefix == 0 or not text[prefix - 1].isalnum()):
            start = prefix
    return trim(text, start, end)


def sentence_bounds(sentences: Sequence[Span], start: int, end: int) -> tuple[int, int]:
    """The sentences that ``[start, end)`` touches (the span itself if it touches none)."""
    touched = [s for s in sentences if s.start < end and s.end > start]
    if not touched:
        return start, end
    return min(touched[0].start, start), max(touched[-1].end, end)


def guide_reader(ranker: SentenceRanker) -> HeuristicReader:
    """The heuristic reader over ``ranker``'s index, abstaining on nothing: it only points at sentences."""
    from rag.reader.heuristic import HeuristicReader

    return HeuristicReader(ranker.index, ranker.idf, ranker.default_idf, threshold=0.0, ranker=ranker)


@dataclass(frozen=True)
class Reading:
    """What one reading of the windows found, before merging and calibration."""

    preds: list[SpanPrediction]
    rank_of: dict[tuple[str, int, int], tuple[float, float]]  # place -> (ranking score, window answerability)
    windows: tuple[Window, ...]
    answerability: float  # the best window's


@dataclass(frozen=True)
class Prepared:
    """One question's evidence and its encoded windows, ready for the model."""

    evidence: Evidence
    encs: tuple[Encoded, ...]


@dataclass(frozen=True)
class WindowOutput:
    """The model's output for one window: start and end logits (``len(enc)`` of them) and the answer logit."""

    start: np.ndarray
    end: np.ndarray
    answer: float


def model_calls(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group windows (by index) into model calls: longest first, each call padded to its longest window and
    holding at most ``batch_tokens`` padded tokens (always at least one window). Sorting by length keeps
    the padding small when the windows of many questions are read together."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    calls: list[list[int]] = []
    for i in order:
        if calls and (len(calls[-1]) + 1) * lengths[calls[-1][0]] <= batch_tokens:
            calls[-1].append(i)
        else:
            calls.append([i])
    return calls


def run_windows(model: ReaderSession, encs: Sequence[Encoded], batch_tokens: int) -> list[WindowOutput]:
    """The model's outputs for ``encs``, in their order, from the calls of :func:`model_calls`."""
    out: list[WindowOutput | None] = [None] * len(encs)
    for call in model_calls([len(e) for e in encs], batch_tokens):
        start, end, answer = model.run_arrays(batch_arrays([encs[i] for i in call]))
        for r, i in enumerate(call):
            n = len(encs[i])
            out[i] = WindowOutput(start[r, :n], end[r, :n], float(answer[r]))
    return out  # type: ignore[return-value]


class LearnedReader:
    def __init__(
        self,
        model: ReaderSession,
        tokenizer,  # noqa: ANN001 - a tokenizers.Tokenizer
        index: IndexData,
        ranker: SentenceRanker,
        *,
        threshold: float,
        windows: int = 4,
        neighbours: int = 1,
        distinct: bool = False,
        headings: bool = True,
        shared: bool | None = None,
        guide: HeuristicReader | None = None,
        guided: int = 0,
        batch_tokens: int = 4096,
    ) -> None:
        self.model, self.tokenizer, self.index, self.ranker = model, tokenizer, index, ranker
        self.docs = {d: doc.text for d, doc in index.documents.items()}
        self.threshold, self.windows = threshold, windows
        self.neighbours, self.distinct, self.headings = neighbours, distinct, headings
        # another reader (the heuristic one) whose best ``guided`` answers' sentences are read first
        self.guide, self.guided = guide, guided
        self.batch_tokens = batch_tokens  # padded tokens per model call when many windows are read at once
        self._memo: dict[tuple[tuple[int, ...], tuple[int, ...]], WindowOutput] | None = None  # remembering()
        # spans compared across windows on one scale when the model was trained with shared normalisation
        self.shared = model.manifest.get("span_normalisation") == "shared" if shared is None else shared

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        index: IndexData,
        ranker: SentenceRanker,
        model: Future[ReaderSession] | None = None,
    ) -> LearnedReader:
        """The reader of ``settings``; ``model``: the model being opened by :func:`preload`."""
        base = Path(base_model_path(settings.reader_base_model))
        return cls(
            model.result() if model is not None else load_model(settings),
            load_tokenizer(base / "tokenizer.json"),
            index,
            ranker,
            threshold=settings.learned_abstain_threshold,
            windows=settings.learned_windows,
            neighbours=settings.learned_neighbours,
            distinct=settings.learned_distinct_windows,
            headings=settings.learned_read_headings,
            guide=guide_reader(ranker) if settings.learned_guided_windows else None,
            guided=settings.learned_guided_windows,
            batch_tokens=settings.reader_batch_tokens,
        )

    def _guided_sentences(self, query: Query, ranked: Ranked) -> list[tuple[str, Span]]:
        """The sentences holding the guide reader's best answers (read before the ranked ones)."""
        if self.guide is None or self.guided <= 0:
            return []
        out: list[tuple[str, Span]] = []
        for a in self.guide.read_ranked(query, ranked, self.guided):
            c = a.citations[0]
            out.append((c.doc_id, Span(c.quote_start, c.quote_end)))
        return out

    def prepare(self, query: Query, hits: Sequence) -> Prepared:
        """Choose ``query``'s windows (the evidence stage, guided by the heuristic reader) and encode them."""
        ranked = rank_sentences(query, hits, self.ranker)  # once, for the guide and the windows
        evidence = evidence_from(
            ranked,
            self.ranker,
            self.windows,
            neighbours=self.neighbours,
            distinct=self.distinct,
            headings=self.headings,
            first=self._guided_sentences(query, ranked),
        )
        if not evidence.windows:
            return Prepared(evidence, ())
        m = self.model
        encs = encode_windows(
            self.tokenizer,
            query.text,
            [self.docs[w.doc_id] for w in evidence.windows],
            [(w.start, w.end) for w in evidence.windows],
            m.max_length,
            m.max_question_tokens,
        )
        return Prepared(evidence, tuple(encs))

    def readings(self, queries: Sequence[Query], hits: Sequence[Sequence], per_window: int = SPANS_PER_WINDOW) -> list[Reading]:
        """One :class:`Reading` per question; the windows of all of them go through the model together
        (:func:`run_windows`: length-sorted calls of at most ``batch_tokens`` padded tokens), so a batch of
        questions costs fewer, fuller model calls than reading each alone, with the same answers."""
        prepared = [self.prepare(q, h) for q, h in zip(queries, hits, strict=True)]
        outputs = self._outputs([e for p in prepared for e in p.encs])
        out, at = [], 0
        for p in prepared:
            n = len(p.encs)
            out.append(self._reading(p, outputs[at : at + n], per_window))
            at += n
        return out

    def _outputs(self, encs: Sequence[Encoded]) -> list[WindowOutput]:
        """The model's outputs for ``encs``; inside :meth:`remembering`, a window already read (the same
        tokens: the same question and window) is not read again."""
        memo = self._memo
        if memo is None:
            return run_windows(self.model, encs, self.batch_tokens)
        keys = [(e.ids, e.type_ids) for e in encs]
        todo = list(dict.fromkeys(k for k in keys if k not in memo))
        if todo:
            first = {k: e for k, e in zip(keys, encs)}
            for k, out in zip(todo, run_windows(self.model, [first[k] for k in todo], self.batch_tokens)):
                memo[k] = out
        return [memo[k] for k in keys]

    @contextmanager
    def remembering(self) -> Iterator[None]:
        """Within the block, each window's model output is kept and reused when the same question reads the
        same window again (``rag eval``: its variants retrieve differently and often choose the same windows).
        Outputs depend on the input tokens only, so answers are unchanged. Not for concurrent use."""
        self._memo = {}
        try:
            yield
        finally:
            self._memo = None

    def predictions(self, query: Query, hits: Sequence, per_window: int = SPANS_PER_WINDOW) -> Reading:
        """Raw-scored span predictions at every place they occur (before merging and calibration); for each
        place the ranking score of the sentence window it was read in and that window's answerability; and
        the windows read with the best answerability among them."""
        return self.readings([query], [hits], per_window)[0]

    def _reading(self, prepared: Prepared, outputs: Sequence[WindowOutput], per_window: int) -> Reading:
        windows, places, encs = prepared.evidence.windows, prepared.evidence.places, prepared.encs
        if not windows:
            return Reading([], {}, (), 0.0)
        m = self.model
        start = [o.start for o in outputs]
        end = [o.end for o in outputs]
        p_answer = 1.0 / (1.0 + np.exp(-np.array([o.answer for o in outputs], dtype=np.float64)))
        share = window_shares(start, end, encs) if self.shared else np.ones(len(encs))
        preds: list[SpanPrediction] = []
        rank_of: dict[tuple[str, int, int], tuple[float, float]] = {}
        for r, (w, enc) in enumerate(zip(windows, encs)):
            text = self.docs[w.doc_id]
            taken: list[tuple[int, int]] = []
            for i, j, p in best_window_spans(start[r], end[r], enc, m.max_answer_tokens, per_window * 4):
                s, e = widen_to_words(text, enc.offsets[i][0], enc.offsets[j][1])
                if s >= e or any(s < te and e > ts for ts, te in taken):
                    continue
                taken.append((s, e))
                score = float(p_answer[r] * p * share[r])
                qs, qe = sentence_bounds(w.sentences, s, e)
                preds.append(SpanPrediction(w.doc_id, s, e, qs, qe, score))
                rank_of.setdefault((w.doc_id, s, e), (w.rank, float(p_answer[r])))
                if w.center.start <= s and e <= w.center.end:  # the same sentence elsewhere: cite it there too
                    for doc_id, span in places.get(text[w.center.start : w.center.end], ()):
                        if (doc_id, span) != (w.doc_id, w.center):
                            shift = span.start - w.center.start
                            preds.append(SpanPrediction(doc_id, s + shift, e + shift, span.start, span.end, score))
                            rank_of.setdefault((doc_id, s + shift, e + shift), (w.rank, float(p_answer[r])))
                if len(taken) >= per_window:
                    break
        return Reading(preds, rank_of, windows, float(p_answer.max()))

    def read(self, query: Query, hits: Sequence, top_k: int) -> list[Answer]:
        return self.read_batch([query], [hits], top_k)[0]

    def read_batch(
        self, queries: Sequence[Query], hits: Sequence[Sequence], top_k: int | Sequence[int]
    ) -> list[list[Answer]]:
        """:meth:`read` for several questions at once (one model pass over all their windows)."""
        ks = [top_k] * len(queries) if isinstance(top_k, int) else list(top_k)
        return [self.decide(r, k) for r, k in zip(self.readings(queries, hits), ks, strict=True)]

    def decide(self, reading: Reading, top_k: int, threshold: float | None = None) -> list[Answer]:
        """The answers of ``reading``: merged by text, calibrated, those below ``threshold`` (default: the
        reader's) withheld, best first."""
        threshold = self.threshold if threshold is None else threshold
        rank_of = reading.rank_of
        raw = merge_predictions(reading.preds, self.docs, max(top_k, 1) + 2, 0.0)
        cal = self.model.calibration
        out = []
        for a in raw:
            seen = [rank_of.get((c.doc_id, c.start, c.end), (0.0, 0.5)) for c in a.citations]
            rank, p_answer = max((r for r, _ in seen), default=0.0), max((p for _, p in seen), default=0.5)
            score = cal(a.score, rank, p_answer, reading.answerability) if cal is not None else a.score
            if score >= threshold:
                extra = {
                    "raw_score": a.score,
                    "ranker_score": rank,
                    "p_answer": p_answer,
                    "evidence_answerability": reading.answerability,
                    "windows": [(w.doc_id, w.start, w.end) for w in reading.windows],
                }
                out.append(Answer(a.text, score, a.citations, extra))
        return sorted(out, key=lambda a: -a.score)[:top_k]
