"""The FAISS index of the chunk vectors: building it, measuring its recall, searching it, loading it mapped.

Kinds (RAG_FAISS_INDEX):

- ``flat``: exact inner product over every vector (the default; fast enough to ~100k chunks);
- ``hnsw``: an HNSW graph over the full vectors (RAG_HNSW_M links a node; RAG_HNSW_EF_SEARCH at query time):
  millions of chunks at ~1.1x the raw vectors' memory;
- ``ivf``: inverted lists of full vectors (RAG_IVF_NLIST lists, RAG_IVF_NPROBE searched);
- ``ivfpq``: inverted lists of product-quantised codes (RAG_PQ_M bytes a vector, ~30x smaller than float32);
  the best ``k x RAG_PQ_RERANK`` candidates are re-scored exactly with the chunk vectors, which are read
  memory-mapped from ``chunk_vectors.npy`` (only the rows touched come into memory).

The approximate kinds are trained on a seeded sample of at most RAG_FAISS_TRAIN_SAMPLE vectors, and their
recall@10 against an exact search is measured at build time (:func:`measure_recall`) and kept in the manifest.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.manifest import FaissInfo

log = logging.getLogger(__name__)

IVF_MIN_POINTS_PER_LIST = 39  # FAISS warns (and clusters poorly) with fewer training vectors per IVF list
RECALL_QUERIES = 200
RECALL_K = 10
RECALL_NOISE = 0.05  # a query is an indexed vector plus Gaussian noise of this norm, renormalised
SEED = 13


def ivf_nlist_for(chunks: int, requested: int) -> int:
    """The number of IVF lists trained for ``chunks`` vectors when RAG_IVF_NLIST is ``requested``.

    ``chunks`` is the number of training vectors (the chunks, or the sample of RAG_FAISS_TRAIN_SAMPLE of them).
    At most one list per 39 vectors (FAISS's minimum training points per centroid) and at least one, so
    a small corpus (under 78 chunks, e.g. the seeds) gets a single list: IVF then scans every vector, an
    exact search like ``flat``, whatever RAG_IVF_NPROBE is.
    """
    return max(1, min(requested, chunks // IVF_MIN_POINTS_PER_LIST))


def pq_bits_for(chunks: int) -> int:
    """Bits per PQ code: 8 (256 centroids per sub-space) once there are 39 training vectors per centroid."""
    return max(1, min(8, int(math.log2(max(2, chunks // IVF_MIN_POINTS_PER_LIST)))))


def training_sample(vectors: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` rows of ``vectors``, drawn with a fixed seed (the same sample for the same corpus)."""
    if len(vectors) <= limit:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(SEED).choice(len(vectors), size=limit, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def make_faiss_index(vectors: np.ndarray, settings: Settings) -> tuple[Any, FaissInfo]:
    """Build the configured kind over ``vectors`` (normalised float32 rows); its recall is measured too."""
    import faiss

    n, dim = vectors.shape
    kind = settings.faiss_index
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        info = FaissInfo(kind=kind, hnsw_m=settings.hnsw_m)
    elif kind in ("ivf", "ivfpq"):
        sample = training_sample(vectors, settings.faiss_train_sample) if n else vectors
        nlist = ivf_nlist_for(len(sample), settings.ivf_nlist)
        if nlist < settings.ivf_nlist:
            log.info(
                "IVF: %d lists instead of RAG_IVF_NLIST=%d for %d chunks (at most one list per %d chunks)",
                nlist,
                settings.ivf_nlist,
                n,
                IVF_MIN_POINTS_PER_LIST,
            )
        quantizer = faiss.IndexFlatIP(dim)
        info = FaissInfo(kind=kind, ivf_nlist=nlist, ivf_nlist_requested=settings.ivf_nlist)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            if dim % settings.pq_m:
                from rag.errors import IndexWriteError

                raise IndexWriteError(
                    f"RAG_PQ_M={settings.pq_m} does not divide the vectors' dimension {dim}: choose a divisor "
                    f"(e.g. {dim // 8} or {dim // 4})."
                )
            bits = pq_bits_for(len(sample))
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, settings.pq_m, bits, faiss.METRIC_INNER_PRODUCT)
            info = info.model_copy(update={"pq_m": settings.pq_m, "pq_bits": bits})
        if n:
            index.train(sample)
    else:
        index = faiss.IndexFlatIP(dim)
        info = FaissInfo(kind="flat")
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    configure(index, info, settings)
    if kind != "flat" and n:
        recall = measure_recall(index, vectors, rerank_factor(info, settings))
        info = info.model_copy(update={"recall_at_10": round(recall, 4)})
        log.info(
            "%s index: recall@%d %.3f against an exact search (%d queries)", kind, RECALL_K, recall, RECALL_QUERIES
        )
    return index, info


def configure(index: Any, info: FaissInfo, settings: Settings) -> None:
    """Apply the search-time knobs (not stored in the file): IVF nprobe, HNSW efSearch."""
    import faiss

    if info.kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = settings.ivf_nprobe
    elif info.kind == "hnsw":
        index.hnsw.efSearch = settings.hnsw_ef_search


def search(
    index: Any, queries: np.ndarray, k: int, vectors: np.ndarray | None, rerank: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the ``k`` best rows per query; rows -1 where fewer exist.

    With ``vectors`` and ``rerank`` > 1, the ``k * rerank`` best by the index are re-scored exactly with
    those rows (for ``ivfpq``, whose own scores are approximate).
    """
    k = min(k, index.ntotal)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if k <= 0:
        return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    if vectors is None or rerank <= 1:
        return index.search(q, k)
    _, cand = index.search(q, min(index.ntotal, k * rerank))
    scores = np.full((len(q), k), -np.inf, np.float32)
    rows = np.full((len(q), k), -1, np.int64)
    for i, c in enumerate(cand):
        c = np.sort(c[c >= 0])  # ascending rows: the memory-mapped vectors are read in file order
        exact = np.asarray(vectors[c] @ q[i], dtype=np.float32)
        order = np.argsort(-exact, kind="stable")[:k]
        rows[i, : len(order)] = c[order]
        scores[i, : len(order)] = exact[order]
    return scores, rows


def rerank_factor(info: FaissInfo, settings: Settings) -> int:
    """How many times ``k`` candidates a search of this index re-scores exactly (1: none)."""
    return settings.pq_rerank if info.kind == "ivfpq" else 1


def recall_at_k(got: np.ndarray, truth: np.ndarray) -> float:
    """Share of the rows of ``truth`` (one row of k ids per query) that ``got`` found, in any order."""
    hits = sum(len(set(t) & set(g)) for t, g in zip(truth.tolist(), got.tolist()))
    return hits / truth.size if truth.size else 1.0


def measure_recall(index: Any, vectors: np.ndarray, rerank: int = 1, queries: int = RECALL_QUERIES) -> float:
    """Recall@10 of ``index`` (searched with ``rerank``, as it will be) against an exact search, on noisy
    copies of indexed rows."""
    import faiss

    n, dim = vectors.shape
    rng = np.random.default_rng(SEED)
    rows = rng.choice(n, size=min(queries, n), replace=False)
    q = vectors[rows] + rng.normal(size=(len(rows), dim)).astype(np.float32) * (RECALL_NOISE / math.sqrt(dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    k = min(RECALL_K, n)
    _, truth = faiss.knn(q, np.ascontiguousarray(vectors, dtype=np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    _, got = search(index, q, k, vectors, rerank)
    return recall_at_k(got, truth)


def read_faiss(path: Path) -> Any:
    """Read ``vectors.faiss``, memory-mapped (read-only) where FAISS can: processes on one host then share its
    pages, and only those touched come into memory. FAISS 1.15 maps the inverted lists of ``ivf`` and ``ivfpq``
    (measured: an IVF index of 300k vectors, 464 MB on disk, cost a process 88 MB after 20 questions instead
    of 487 MB) but reads ``flat`` and ``hnsw`` indexes into memory whatever the flags."""
    import faiss

    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:  # a kind this FAISS cannot map: read it into memory
        return faiss.read_index(str(path))
