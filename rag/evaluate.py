"""Evaluation runs: answer a gold set with the full system and with baselines, side by side."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.metrics import best_of_k_f1, citation_valid, exact_match, f1, percentile, recall_at_k, reciprocal_rank
from rag.pipeline import Pipeline
from rag.reader import read_batch
from rag.reader.baseline import AbstainReader, FirstSentenceReader
from rag.retrieval import DenseRetriever, HybridRetriever, PassageRetriever, Query
from rag.squad import GoldItem
from rag.store import bm25_for
from rag.types import Answer, Hit, Result

RECALL_K = 5
FULL = "hybrid + reader (full)"
HEURISTIC = "hybrid + heuristic reader"

log = logging.getLogger("rag.evaluate")


@dataclass
class Record:
    """One gold question answered by one system variant."""

    item: GoldItem
    result: Result
    retrieved_docs: list[str]
    latency_ms: float | None = None
    unthresholded: tuple[tuple[str, float], ...] = ()  # top answers before abstention, for threshold sweeps


@dataclass
class VariantRun:
    name: str
    records: list[Record] = field(default_factory=list)


def retrieved_doc_ids(hits: Sequence[Hit]) -> list[str]:
    """Documents in retrieval order, each once (a hit's duplicates count at the hit's rank)."""
    out: list[str] = []
    for h in hits:
        for c in h.chunks:
            if c.doc_id not in out:
                out.append(c.doc_id)
    return out


def hits_doc_ranks(hits: Sequence[Hit]) -> list[list[str]]:
    return [[c.doc_id for c in h.chunks] for h in hits]


def variants(p: Pipeline) -> dict[str, Pipeline]:
    """The full pipeline and the comparison systems built from the same index and reader."""
    assert p.index is not None
    searcher = p.retriever.searcher
    if isinstance(searcher, HybridRetriever):
        dense, lexical, rrf_k = searcher.dense, searcher.lexical, searcher.rrf_k
    else:
        dense = searcher if isinstance(searcher, DenseRetriever) else DenseRetriever(p.index.faiss_index)
        lexical = bm25_for(p.index)
        rrf_k = 60
    base = p.retriever

    def with_searcher(s) -> PassageRetriever:  # noqa: ANN001
        return PassageRetriever(s, base.chunks, base.candidate_k, base.threshold)

    def clone(retriever: PassageRetriever | None = None, reader=None) -> Pipeline:  # noqa: ANN001
        return Pipeline(
            retriever or p.retriever,
            reader or p.reader,
            p.embedder,
            index=p.index,
            retrieve_k=p.retrieve_k,
            top_k=p.top_k,
            max_question_chars=p.max_question_chars,
            evidence=p.evidence,
            closest_k=p.closest_k,
        )

    docs = {d: doc.text for d, doc in p.index.documents.items()}
    return {
        FULL: clone(with_searcher(HybridRetriever(dense, lexical, rrf_k))),
        **other_readers(p),
        "bm25 + reader": clone(with_searcher(lexical)),
        "dense + reader": clone(with_searcher(dense)),
        "hybrid + first sentence (naive)": clone(
            with_searcher(HybridRetriever(dense, lexical, rrf_k)), FirstSentenceReader(docs)
        ),
        "always abstain (reference)": clone(reader=AbstainReader()),
    }


def other_readers(p: Pipeline) -> dict[str, Pipeline]:
    """The heuristic reader beside the learned one (same retrieval), so both are always reported together."""
    if p.companion is None:
        return {}
    return {
        HEURISTIC: Pipeline(
            p.retriever,
            p.companion,
            p.embedder,
            index=p.index,
            retrieve_k=p.retrieve_k,
            top_k=p.top_k,
            max_question_chars=p.max_question_chars,
            evidence=p.evidence,
            closest_k=p.closest_k,
        )
    }


def unknown_doc_ids(items: Sequence[GoldItem], indexed_doc_ids: Collection[str]) -> list[GoldItem]:
    """The gold items naming a supporting document that is not in the index; logs one warning if any.

    Their retrieval metrics (recall, MRR) can only count the documents that are indexed, so a gold file for
    another corpus, or doc ids spelled differently (``seeds/001.txt`` for ``001.txt``), would silently lower
    them. :func:`run` calls this itself.
    """
    known = indexed_doc_ids if isinstance(indexed_doc_ids, (set, frozenset, dict)) else set(indexed_doc_ids)
    bad = [it for it in items if any(d not in known for d in it.doc_ids)]
    if bad:
        first = bad[0]
        missing = next(d for d in first.doc_ids if d not in known)
        log.warning(
            "%d of %d gold questions name supporting documents that are not in the index (e.g. %r in %r); "
            "their recall and MRR count only indexed documents. Check that the gold file's doc_ids are paths "
            "relative to the indexed corpus folder, or index the documents they name.",
            len(bad),
            len(items),
            missing,
            first.id,
        )
    return bad


def run(
    pipeline: Pipeline,
    items: Sequence[GoldItem],
    *,
    with_baselines: bool = True,
    on_progress: Callable[[int], None] | None = None,
    batch: int = 16,
) -> list[VariantRun]:
    """Answer every gold question with each variant, ``batch`` questions at a time (one embedding call and,
    for the learned reader, one model pass per batch and variant: the answers are those of asking each
    question alone). Latency is measured for the full system only: a batch's time shared by its questions.

    Logs a warning (see :func:`unknown_doc_ids`) when gold items name documents the index does not hold.
    """
    if pipeline.index is not None:
        unknown_doc_ids(items, pipeline.index.documents)
    systems = variants(pipeline) if with_baselines else {FULL: pipeline, **other_readers(pipeline)}
    runs = {name: VariantRun(name) for name in systems}
    remembering = getattr(pipeline.reader, "remembering", None)  # variants that read the same window read it once
    for at in range(0, len(items), max(1, batch)):
        with remembering() if remembering is not None else contextlib.nullcontext():
            _run_batch(systems, runs, items[at : at + max(1, batch)])
        if on_progress:
            on_progress(len(items[at : at + max(1, batch)]))
    return list(runs.values())


def _run_batch(systems: dict[str, Pipeline], runs: dict[str, VariantRun], chunk: Sequence[GoldItem]) -> None:
    """One batch of questions through every variant (the full system first: its latency is measured)."""
    t0 = time.perf_counter()
    queries: list[Query] = systems[FULL].queries([item.question for item in chunk])
    full, raws = answer_open(systems[FULL], queries, 3)
    latency = (time.perf_counter() - t0) * 1000 / len(chunk)
    for item, (result, hits), raw in zip(chunk, full, raws, strict=True):
        runs[FULL].records.append(
            Record(item, result, retrieved_doc_ids(hits), latency, tuple((a.text, a.score) for a in raw))
        )
    for name, system in systems.items():
        if name != FULL:
            for item, (r, h) in zip(chunk, system.answer_batch(queries), strict=True):
                runs[name].records.append(Record(item, r, retrieved_doc_ids(h)))


def answer_open(
    system: Pipeline, queries: Sequence[Query], open_k: int
) -> tuple[list[tuple[Result, list[Hit]]], list[list[Answer]]]:
    """``system.answer_batch(queries)`` and, for each question, the reader's best ``open_k`` answers with no
    abstention (the threshold sweep's input). A reader that can decide twice on one reading (the learned
    one: :meth:`~rag.reader.learned.LearnedReader.decide`) reads once; another reads again without its
    threshold."""
    reader = system.reader
    hits = [system.retriever.retrieve(q, system.retrieve_k) for q in queries]
    if hasattr(reader, "readings") and hasattr(reader, "decide"):
        readings = reader.readings(queries, hits)
        answers = [reader.decide(r, system.top_k) for r in readings]
        raws = [reader.decide(r, open_k, threshold=0.0) for r in readings]
    else:
        answers = read_batch(reader, queries, hits, [system.top_k] * len(queries))
        open_reader = copy.copy(reader)
        if hasattr(open_reader, "threshold"):
            open_reader.threshold = 0.0  # type: ignore[attr-defined]
        raws = read_batch(open_reader, queries, hits, [open_k] * len(queries))
    return [(system.result(q, a, h), h) for q, a, h in zip(queries, answers, hits, strict=True)], raws


def metrics(run_: VariantRun, documents: dict[str, str]) -> dict[str, Any]:
    """Aggregate the metrics of one variant over its records."""
    recs = run_.records
    answerable = [r for r in recs if r.item.answers]
    unanswerable = [r for r in recs if not r.item.answers]

    def top(r: Record) -> str | None:
        return r.result.answers[0].text if r.result.answers else None

    def mean(xs: Sequence[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    cites = [c for r in recs for a in r.result.answers for c in a.citations]
    valid = [c.doc_id in documents and citation_valid(c, documents[c.doc_id]) for c in cites]
    latencies = [r.latency_ms for r in recs if r.latency_ms is not None]
    out: dict[str, Any] = {
        "questions": len(recs),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": mean([exact_match(top(r), list(r.item.answers)) for r in recs]),
        "f1": mean([f1(top(r), list(r.item.answers)) for r in recs]),
        "f1_answerable": mean([f1(top(r), list(r.item.answers)) for r in answerable]),
        "f1_at_3": mean([best_of_k_f1([a.text for a in r.result.answers[:3]], list(r.item.answers)) for r in recs]),
        f"recall_at_{RECALL_K}": mean(
            [recall_at_k(r.retrieved_docs, list(r.item.doc_ids), RECALL_K) for r in answerable]
        ),
        "mrr": mean([reciprocal_rank(r.retrieved_docs, list(r.item.doc_ids)) for r in answerable]),
        "citations": len(cites),
        "invalid_citations": valid.count(False),
        "citation_validity": mean([float(v) for v in valid]) if valid else 1.0,
        "abstention_unanswerable": mean([float(not r.result.answers) for r in unanswerable]),
        "false_abstention_answerable": mean([float(not r.result.answers) for r in answerable]),
        "latency_p50_ms": percentile(latencies, 50) if latencies else None,
        "latency_p95_ms": percentile(latencies, 95) if latencies else None,
    }
    return out


def citation_warnings(all_metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per variant whose citations are not all valid (empty when every citation checks out).

    Every citation must quote its document exactly at its offsets, so anything below 100% is a bug to
    report, never noise; the CLI prints these lines as warnings after the table.
    """
    out = []
    for name, m in all_metrics.items():
        bad, total = m.get("invalid_citations", 0), m.get("citations", 0)
        validity = m.get("citation_validity")
        if bad or (validity is not None and validity < 1.0):
            pct = (validity or 0.0) * 100
            out.append(
                f"{name}: {bad} of {total} citations are invalid (citation validity {pct:.1f}%, expected 100%): "
                "their offsets or quotes do not match the document text, which is a bug; please report it."
            )
    return out


def sweep_thresholds(records: Sequence[Record], steps: int = 100, k: int = 1) -> list[tuple[float, float]]:
    """Mean F1 (of the best of the top ``k`` answers) for each abstention threshold in [0, 1].

    Pure: uses the scores recorded before abstention, so no question is answered again.
    """
    out = []
    for i in range(steps + 1):
        t = i / steps
        scores = []
        for r in records:
            kept = [text for text, score in r.unthresholded[:k] if score >= t]
            scores.append(best_of_k_f1(kept, list(r.item.answers)) if kept else f1(None, list(r.item.answers)))
        out.append((t, sum(scores) / len(scores) if scores else 0.0))
    return out


def write_outputs(
    out_dir: Path, runs: Sequence[VariantRun], all_metrics: dict[str, dict[str, Any]], meta: dict
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    full = next(r for r in runs if r.name == FULL)
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for rec in full.records:
            row = {"id": rec.item.id, **rec.result.to_dict(), "latency_ms": round(rec.latency_ms or 0.0, 2)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "metrics.json").write_text(
        json.dumps({"meta": meta, "variants": all_metrics}, indent=2, ensure_ascii=False), encoding="utf-8"
    )


_COLUMNS = [
    ("EM", "exact_match", 100),
    ("F1", "f1", 100),
    ("F1@3", "f1_at_3", 100),
    ("F1 ans.", "f1_answerable", 100),
    (f"R@{RECALL_K}", f"recall_at_{RECALL_K}", 100),
    ("MRR", "mrr", 100),
    ("cite ok %", "citation_validity", 100),
    ("abstain (unans.) %", "abstention_unanswerable", 100),
    ("false abstain %", "false_abstention_answerable", 100),
    ("p50 ms", "latency_p50_ms", 1),
    ("p95 ms", "latency_p95_ms", 1),
]


def markdown_table(all_metrics: dict[str, dict[str, Any]]) -> str:
    head = "| system | " + " | ".join(c for c, _, _ in _COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(_COLUMNS)
    rows = []
    for name, m in all_metrics.items():
        cells = []
        for _, key, scale in _COLUMNS:
            v = m.get(key)
            cells.append("–" if v is None else f"{v * scale:.1f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])
