"""The index manifest: a pydantic model, since it is a file written to disk and read back."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field

FORMAT_VERSION = 1


class EmbeddingInfo(BaseModel):
    model: str
    backend: str
    dim: int
    export_id: str | None = None  # which ONNX export produced the vectors, when backend == "onnx"


class ChunkingInfo(BaseModel):
    max_chars: int
    overlap_sentences: int


class FaissInfo(BaseModel):
    """The parameters that shape ``vectors.faiss``; loading checks them against the settings.

    - ``kind``: ``flat``, ``hnsw``, ``ivf`` or ``ivfpq`` (RAG_FAISS_INDEX);
    - ``hnsw_m``: links per node of an HNSW graph (RAG_HNSW_M), for ``hnsw``;
    - ``ivf_nlist``: the number of IVF lists actually trained, for ``ivf``. It is RAG_IVF_NLIST capped at one
      list per 39 chunks (FAISS wants at least 39 training vectors per list) and at least 1, so a corpus of
      fewer than 78 chunks (the seeds) gets a single list: an exact search, like ``flat``;
    - ``ivf_nlist_requested``: RAG_IVF_NLIST when the index was built (absent in indexes written before it
      was recorded).

    - ``pq_m``, ``pq_bits``: bytes a vector is coded into and bits a code, for ``ivfpq`` (RAG_PQ_M; the bits are
      8, or fewer when the corpus is too small to train 256 centroids a sub-space);
    - ``recall_at_10``: for the approximate kinds, recall@10 against an exact search measured at build time
      (rag.vector_index.measure_recall), with the search-time knobs of the build.

    The search-time knobs (RAG_IVF_NPROBE, RAG_HNSW_EF_SEARCH, RAG_PQ_RERANK) are not stored: they are applied
    when the index is loaded.
    """

    kind: str
    hnsw_m: int | None = None
    ivf_nlist: int | None = None
    ivf_nlist_requested: int | None = None
    pq_m: int | None = None
    pq_bits: int | None = None
    recall_at_10: float | None = None


class DocumentInfo(BaseModel):
    sha256: str
    chars: int
    chunks: int
    # the file it was read from, with its size and mtime then: `rag ask` warns when it has changed since
    # (absent in indexes written before they were recorded)
    source: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    # how the file was read (absent in indexes written before they were recorded): the sha256 of its bytes
    # and the extractor (an unchanged pair is not extracted again), the encoding of a text file that was
    # not UTF-8, an HTML page's title, and where each page of a PDF starts in the text
    file_sha256: str | None = None
    extractor: str | None = None
    encoding: str | None = None
    title: str | None = None
    pages: list[int] | None = None


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    rag_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    corpus: list[str]  # the paths as given to `rag index` (what error messages name)
    # the same paths made absolute, so `rag index` with no PATH re-indexes this corpus from any folder
    # (absent in indexes written before it was recorded: ``corpus`` is read from the current folder then)
    corpus_resolved: list[str] | None = None
    embedding: EmbeddingInfo
    chunking: ChunkingInfo
    faiss: FaissInfo
    documents: dict[str, DocumentInfo]
    counts: dict[str, int]
    files: dict[str, str]  # artefact file name -> sha256, checked on load
