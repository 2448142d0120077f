"""The index directory: building it (incrementally, atomically) and loading it back with checks.

Layout (all written together, then swapped in by one rename):

- ``manifest.json``: format version, model, chunking and FAISS parameters, each document's content hash,
  counts, and the sha256 of every other file (checked on load);
- ``vectors.faiss``: the chunk vectors (normalised; inner product == cosine); row i is chunk i;
- ``chunks.jsonl``: one chunk per line: row, doc_id, start, end, text, sentence spans;
- ``chunk_vectors.npy`` / ``sentence_vectors.npy``: float32 vectors (reused when re-indexing, and
  sentence vectors let the reader rank sentences without embedding them at query time);
- ``sentences.jsonl``: one sentence per line (doc_id, start, end), aligned with ``sentence_vectors.npy``;
- ``documents.jsonl``: doc_id, sha256 and full text of each document (served by the API, quoted from).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from rag import __version__
from rag.chunking import chunk_text
from rag.config import Settings
from rag.corpus import load_corpus
from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing, RagError
from rag.manifest import FORMAT_VERSION, ChunkingInfo, DocumentInfo, EmbeddingInfo, FaissInfo, Manifest
from rag.types import Chunk, Document, Span

if TYPE_CHECKING:
    from rag.embedding import Embedder

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ARTEFACTS = (
    "vectors.faiss",
    "chunks.jsonl",
    "chunk_vectors.npy",
    "sentences.jsonl",
    "sentence_vectors.npy",
    "documents.jsonl",
)
KEEP_FILES = {"README.md", ".gitkeep"}  # carried over when the directory is replaced


@dataclass(frozen=True)
class SentenceRef:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class IndexData:
    """Everything a loaded index holds."""

    path: Path
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentences: list[SentenceRef]
    sentence_vectors: np.ndarray
    sentence_row: dict[tuple[str, int, int], int]
    faiss_index: Any


@dataclass(frozen=True)
class BuildReport:
    path: Path
    documents: int
    chunks: int
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    embedded: int
    seconds: float


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------------------------- FAISS
def make_faiss_index(vectors: np.ndarray, settings: Settings) -> tuple[Any, FaissInfo]:
    import faiss

    n, dim = vectors.shape
    kind = settings.faiss_index
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        info = FaissInfo(kind=kind, hnsw_m=settings.hnsw_m)
    elif kind == "ivf":
        nlist = max(1, min(settings.ivf_nlist, n // 39 or 1))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if n:
            index.train(vectors)
        info = FaissInfo(kind=kind, ivf_nlist=nlist)
    else:
        index = faiss.IndexFlatIP(dim)
        info = FaissInfo(kind="flat")
    if n:
        index.add(vectors)
    return index, info


# --------------------------------------------------------------------------------------------- build
def _compatible(manifest: Manifest, settings: Settings) -> bool:
    return (
        manifest.format_version == FORMAT_VERSION
        and manifest.embedding.model == settings.embedding_model
        and manifest.chunking.max_chars == settings.chunk_max_chars
        and manifest.chunking.overlap_sentences == settings.chunk_overlap_sentences
    )


def _previous(index_dir: Path, settings: Settings) -> IndexData | None:
    """The existing index, when it can be reused for unchanged documents; None otherwise."""
    if not (index_dir / MANIFEST).exists():
        return None
    try:
        data = load_index(index_dir, settings, check_settings=False)
    except RagError as exc:
        log.warning("rebuilding from scratch: the existing index is not reusable (%s)", exc)
        return None
    return data if _compatible(data.manifest, settings) else None


def build_index(
    paths: Sequence[Path],
    settings: Settings,
    index_dir: Path,
    embedder: Embedder | Callable[[], Embedder],
    *,
    progress: bool = False,
    rebuild: bool = False,
) -> BuildReport:
    """Index the ``.txt``/``.md`` files under ``paths`` into ``index_dir``.

    Unchanged documents (same content hash, same settings) reuse their chunks and vectors; the new index
    is written to a temporary directory and swapped in with a rename, so an interrupted build leaves the
    previous index intact. ``embedder`` may be a factory, called only when something must be embedded.
    """
    t0 = time.perf_counter()
    _check_index_dir_is_ours(index_dir)
    docs = load_corpus(paths)
    prev = None if rebuild else _previous(index_dir, settings)
    prev_docs = prev.manifest.documents if prev else {}

    chunks: list[Chunk] = []
    chunk_vecs: list[np.ndarray | None] = []
    sentences: list[SentenceRef] = []
    sent_vecs: list[np.ndarray | None] = []
    sent_seen: set[tuple[str, int, int]] = set()
    added, changed, unchanged = [], [], []

    for doc in docs:
        reuse = prev is not None and doc.doc_id in prev_docs and prev_docs[doc.doc_id].sha256 == doc.sha256
        (unchanged if reuse else changed if doc.doc_id in prev_docs else added).append(doc.doc_id)
        for start, end, spans in chunk_text(doc.text, settings.chunk_max_chars, settings.chunk_overlap_sentences):
            chunks.append(Chunk(len(chunks), doc.doc_id, start, end, doc.text[start:end], spans))
            chunk_vecs.append(None)
            for sp in spans:
                key = (doc.doc_id, sp.start, sp.end)
                if key not in sent_seen:
                    sent_seen.add(key)
                    sentences.append(SentenceRef(*key))
                    sent_vecs.append(None)
        if reuse and prev is not None:
            _fill_from_previous(prev, doc.doc_id, chunks, chunk_vecs, sentences, sent_vecs)

    removed = sorted(set(prev_docs) - {d.doc_id for d in docs})
    docs_by_id = {d.doc_id: d for d in docs}
    todo_c = [i for i, v in enumerate(chunk_vecs) if v is None]
    todo_s = [i for i, v in enumerate(sent_vecs) if v is None]
    emb: Embedder | None = None
    if todo_c or todo_s:
        emb = embedder() if callable(embedder) and not hasattr(embedder, "encode") else embedder  # type: ignore[assignment]
        texts = [chunks[i].text for i in todo_c] + [
            docs_by_id[sentences[i].doc_id].text[sentences[i].start : sentences[i].end] for i in todo_s
        ]
        vecs = emb.encode(texts, batch_size=settings.embed_batch_size, progress=progress)
        for j, i in enumerate(todo_c):
            chunk_vecs[i] = vecs[j]
        for j, i in enumerate(todo_s):
            sent_vecs[i] = vecs[len(todo_c) + j]
    if emb is not None:
        emb_info = EmbeddingInfo(
            model=settings.embedding_model,
            backend=emb.backend,
            dim=emb.dim,
            export_id=getattr(emb, "export_id", None),
        )
    elif prev is not None:
        emb_info = prev.manifest.embedding
    else:  # pragma: no cover - an empty corpus is rejected by load_corpus
        raise RagError("Nothing to embed.")

    cv = np.vstack([v for v in chunk_vecs]).astype(np.float32) if chunks else np.zeros((0, emb_info.dim), np.float32)
    sv = np.vstack([v for v in sent_vecs]).astype(np.float32) if sentences else np.zeros((0, emb_info.dim), np.float32)
    faiss_index, faiss_info = make_faiss_index(cv, settings)

    manifest = Manifest(
        rag_version=__version__,
        corpus=[str(p) for p in paths],
        embedding=emb_info,
        chunking=ChunkingInfo(max_chars=settings.chunk_max_chars, overlap_sentences=settings.chunk_overlap_sentences),
        faiss=faiss_info,
        documents={
            d.doc_id: DocumentInfo(sha256=d.sha256, chars=len(d.text), chunks=sum(c.doc_id == d.doc_id for c in chunks))
            for d in docs
        },
        counts={"documents": len(docs), "chunks": len(chunks), "sentences": len(sentences)},
        files={},
    )
    _write_atomically(index_dir, manifest, docs, chunks, cv, sentences, sv, faiss_index)
    return BuildReport(
        path=index_dir,
        documents=len(docs),
        chunks=len(chunks),
        added=tuple(added),
        changed=tuple(changed),
        removed=tuple(removed),
        unchanged=tuple(unchanged),
        embedded=len(todo_c) + len(todo_s),
        seconds=time.perf_counter() - t0,
    )


def _fill_from_previous(
    prev: IndexData,
    doc_id: str,
    chunks: list[Chunk],
    chunk_vecs: list[np.ndarray | None],
    sentences: list[SentenceRef],
    sent_vecs: list[np.ndarray | None],
) -> None:
    """Copy vectors of an unchanged document's chunks and sentences from the previous index."""
    old_chunks = {(c.start, c.end): c.row for c in prev.chunks if c.doc_id == doc_id}
    for i in range(len(chunks) - 1, -1, -1):
        c = chunks[i]
        if c.doc_id != doc_id:
            break
        row = old_chunks.get((c.start, c.end))
        if row is not None:
            chunk_vecs[i] = prev.chunk_vectors[row]
    for i in range(len(sentences) - 1, -1, -1):
        s = sentences[i]
        if s.doc_id != doc_id:
            break
        row = prev.sentence_row.get((s.doc_id, s.start, s.end))
        if row is not None:
            sent_vecs[i] = prev.sentence_vectors[row]


def _check_index_dir_is_ours(index_dir: Path) -> None:
    if index_dir.exists() and not index_dir.is_dir():
        raise RagError(f"Index path {index_dir} is a file, not a directory. Choose another --index-dir.")
    if not index_dir.is_dir() or (index_dir / MANIFEST).exists():
        return
    foreign = [p.name for p in index_dir.iterdir() if p.name not in KEEP_FILES and p.name not in ARTEFACTS]
    if foreign:
        raise RagError(
            f"{index_dir} holds files that are not part of an index ({', '.join(sorted(foreign)[:3])}); "
            "refusing to replace it. Choose an empty or new folder with --index-dir."
        )


def _write_atomically(
    index_dir: Path,
    manifest: Manifest,
    docs: Sequence[Document],
    chunks: Sequence[Chunk],
    chunk_vectors: np.ndarray,
    sentences: Sequence[SentenceRef],
    sentence_vectors: np.ndarray,
    faiss_index: Any,
) -> None:
    import faiss

    index_dir = index_dir.absolute()
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.tmp-", dir=index_dir.parent))
    try:
        faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        _write_jsonl(
            tmp / "chunks.jsonl",
            [
                {
                    "row": c.row,
                    "doc_id": c.doc_id,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "sentences": [[s.start, s.end] for s in c.sentences],
                }
                for c in chunks
            ],
        )
        np.save(tmp / "chunk_vectors.npy", chunk_vectors)
        np.save(tmp / "sentence_vectors.npy", sentence_vectors)
        _write_jsonl(tmp / "sentences.jsonl", [{"doc_id": s.doc_id, "start": s.start, "end": s.end} for s in sentences])
        _write_jsonl(tmp / "documents.jsonl", [{"doc_id": d.doc_id, "sha256": d.sha256, "text": d.text} for d in docs])
        manifest.files = {name: _sha256_file(tmp / name) for name in ARTEFACTS}
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        if index_dir.is_dir():
            for name in KEEP_FILES:
                if (index_dir / name).is_file():
                    shutil.copy2(index_dir / name, tmp / name)
            old = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.old-", dir=index_dir.parent))
            os.replace(index_dir, old / "index")
            os.replace(tmp, index_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------- load
def read_manifest(index_dir: Path) -> Manifest:
    path = index_dir / MANIFEST
    if not path.exists():
        raise IndexMissing(f"No index in {index_dir}. Build one with `rag index` (or `rag index PATH`).")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError, OSError) as exc:
        raise IndexCorrupt(
            f"The index manifest {path} is damaged ({exc.__class__.__name__}). Rebuild it with `rag index --rebuild`."
        ) from None


def check_compatible(manifest: Manifest, settings: Settings, index_dir: Path) -> None:
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatch(
            f"The index in {index_dir} has format {manifest.format_version}, this version reads {FORMAT_VERSION}. "
            "Rebuild it with `rag index --rebuild`."
        )
    if manifest.embedding.model != settings.embedding_model:
        raise IndexMismatch(
            f"The index in {index_dir} was built with model {manifest.embedding.model!r} but the settings say "
            f"{settings.embedding_model!r}. Run `rag index --rebuild` to re-embed, or set RAG_EMBEDDING_MODEL back."
        )
    c = manifest.chunking
    if (c.max_chars, c.overlap_sentences) != (settings.chunk_max_chars, settings.chunk_overlap_sentences):
        raise IndexMismatch(
            f"The index in {index_dir} was chunked with max_chars={c.max_chars}, overlap={c.overlap_sentences}; "
            f"the settings say {settings.chunk_max_chars}, {settings.chunk_overlap_sentences}. Run `rag index` "
            "to re-chunk, or restore those settings."
        )


def load_index(index_dir: Path, settings: Settings, *, check_settings: bool = True) -> IndexData:
    """Load and verify an index directory; every problem becomes a one-line :class:`RagError`."""
    import faiss

    manifest = read_manifest(index_dir)
    if check_settings:
        check_compatible(manifest, settings, index_dir)
    hint = "Rebuild it with `rag index --rebuild`."
    for name in ARTEFACTS:
        path = index_dir / name
        if not path.is_file():
            raise IndexCorrupt(f"The index in {index_dir} is incomplete: {name} is missing. {hint}")
        if _sha256_file(path) != manifest.files.get(name):
            raise IndexCorrupt(f"The index file {path} is damaged (checksum mismatch). {hint}")
    try:
        documents = {
            r["doc_id"]: Document(r["doc_id"], r["text"], r["sha256"])
            for r in _read_jsonl(index_dir / "documents.jsonl")
        }
        chunks = [
            Chunk(
                r["row"],
                r["doc_id"],
                r["start"],
                r["end"],
                r["text"],
                tuple(Span(s, e) for s, e in r["sentences"]),
            )
            for r in _read_jsonl(index_dir / "chunks.jsonl")
        ]
        sentences = [SentenceRef(r["doc_id"], r["start"], r["end"]) for r in _read_jsonl(index_dir / "sentences.jsonl")]
        chunk_vectors = np.load(index_dir / "chunk_vectors.npy", allow_pickle=False)
        sentence_vectors = np.load(index_dir / "sentence_vectors.npy", allow_pickle=False)
        faiss_index = faiss.read_index(str(index_dir / "vectors.faiss"))
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        raise IndexCorrupt(f"The index in {index_dir} cannot be read ({exc.__class__.__name__}). {hint}") from None
    if (
        faiss_index.ntotal != len(chunks)
        or len(chunk_vectors) != len(chunks)
        or len(sentence_vectors) != len(sentences)
    ):
        raise IndexCorrupt(f"The index in {index_dir} is inconsistent (row counts differ). {hint}")
    if manifest.faiss.kind == "ivf":
        faiss.extract_index_ivf(faiss_index).nprobe = settings.ivf_nprobe
    return IndexData(
        path=index_dir,
        manifest=manifest,
        documents=documents,
        chunks=chunks,
        chunk_vectors=chunk_vectors,
        sentences=sentences,
        sentence_vectors=sentence_vectors,
        sentence_row={(s.doc_id, s.start, s.end): i for i, s in enumerate(sentences)},
        faiss_index=faiss_index,
    )
