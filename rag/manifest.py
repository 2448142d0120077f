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
    kind: str
    hnsw_m: int | None = None
    ivf_nlist: int | None = None


class DocumentInfo(BaseModel):
    sha256: str
    chars: int
    chunks: int


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    rag_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    corpus: list[str]
    embedding: EmbeddingInfo
    chunking: ChunkingInfo
    faiss: FaissInfo
    documents: dict[str, DocumentInfo]
    counts: dict[str, int]
    files: dict[str, str]  # artefact file name -> sha256, checked on load
