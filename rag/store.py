"""The index directory: building it (incrementally, atomically) and loading it back with checks.

Layout (all written together, then swapped in by one rename):

- ``manifest.json``: format version, model, chunking and FAISS parameters, each document's content hash,
  counts, and the sha256 of every other file (checked on load);
- ``vectors.faiss``: the chunk vectors (normalised; inner product == cosine); row i is chunk i;
- ``chunks.jsonl``: one chunk per line: row, doc_id, start, end, text, sentence spans;
- ``chunk_vectors.npy`` / ``sentence_vectors.npy``: float32 vectors (reused when re-indexing, and
  sentence vectors let the reader rank sentences without embedding them at query time);
- ``sentences.jsonl``: one sentence per line (doc_id, start, end), aligned with ``sentence_vectors.npy``;
- ``documents.jsonl``: doc_id, sha256 and full text of each document (served by the API, quoted from);
- ``bm25_*.npy`` / ``bm25_*.json``: the BM25 index over the chunks (bm25s's format), so loading does not
  re-analyse every chunk. Optional: an index without them (older versions) gets BM25 built in memory;
- ``lexicon.json``: the words the corpus writes in lower case and those it capitalises mid-sentence (the
  reader's evidence for what is a name). Optional likewise.
"""

from __future__ import annotations

import json
import logging
import shlex
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
from rag.corpus import ReadFiles, check_has_text, read_files, scan_corpus
from rag.digests import sha256_file
from rag.errors import IndexCorrupt, IndexMismatch, IndexMissing, RagError
from rag.index_dir import check_replaceable, replace_dir, writer_lock
from rag.manifest import FORMAT_VERSION, ChunkingInfo, DocumentInfo, EmbeddingInfo, Manifest
from rag.reader.spans import Lexicon, build_lexicon, lexicon_from_json, lexicon_to_json
from rag.retrieval import BM25_FILES, BM25Retriever, DenseRetriever
from rag.types import Chunk, Document, Span
from rag.vector_index import (
    IVF_MIN_POINTS_PER_LIST,
    configure,
    ivf_nlist_for,
    make_faiss_index,
    read_faiss,
    rerank_factor,
)

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
LEXICON = "lexicon.json"  # optional: absent from indexes written before it
KEEP_FILES = {"README.md", ".gitkeep"}  # carried over when the directory is replaced
DEFAULT_INDEX_DIR: Path = Settings.model_fields["index_dir"].default


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
    lexicon: Lexicon | None = None  # the corpus's capitalisation evidence for the reader (None: older index)


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
    skipped: tuple[tuple[str, str], ...] = ()  # (doc id, reason): files with nothing to index
    failed: tuple[tuple[str, str], ...] = ()  # (doc id, reason): broken or unreadable files
    other_files: int = 0  # files of formats rag does not read


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------------------------- commands
def index_command(index_dir: Path, *, rebuild: bool = False, corpus: Sequence[str] = ()) -> str:
    """The `rag index` command line that (re)builds ``index_dir``, for error messages.

    ``--index-dir`` is named unless ``index_dir`` is the default (``index``), and ``corpus`` (the paths the
    index was built from, when they are not the default corpus) is passed, so the command rebuilds the
    same index when followed literally.
    """
    words = ["rag", "index", *corpus]
    if rebuild:
        words.append("--rebuild")
    if Path(index_dir) != DEFAULT_INDEX_DIR:
        words += ["--index-dir", str(index_dir)]
    return f"`{shlex.join(words)}`"


def update_command(manifest: Manifest, settings: Settings, index_dir: Path) -> str:
    """The `rag index` command line that brings the index in ``index_dir`` up to date with its corpus."""
    return index_command(index_dir, corpus=_corpus_args(manifest, settings))


def _corpus_args(manifest: Manifest, settings: Settings) -> list[str]:
    """The corpus paths to name in a rebuild command: none when the index was built from the default corpus."""
    return [] if manifest.corpus == [str(settings.corpus_dir)] else list(manifest.corpus)


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
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    read: ReadFiles = read_files,
) -> BuildReport:
    """Index the documents under ``paths`` (every format :mod:`rag.extract` reads) into ``index_dir``.

    Unchanged files (same bytes, same extractor) are not extracted again, and unchanged documents (same
    text, same settings) reuse their chunks and vectors; files that cannot be read are reported, not fatal.
    The new index is written to a temporary directory and swapped in with a rename, so an interrupted build
    leaves the previous index intact. ``embedder`` may be a factory, called only when something must be embedded.

    One writer at a time per index directory: another build of the same directory waits for this one
    (``on_wait`` is told who holds it), or raises :class:`~rag.errors.IndexBusy` when not ``wait``.
    ``read`` reads the files that must be read (:mod:`rag.scale.ray_index` passes one that runs on Ray, and an
    embedder that embeds on Ray); everything else is the same code whichever runs it.
    """
    check_replaceable(
        index_dir, marker=MANIFEST, allowed=KEEP_FILES | set(ARTEFACTS) | set(BM25_FILES.values()) | {LEXICON}
    )
    with writer_lock(index_dir, wait=wait, on_wait=on_wait or (lambda msg: log.warning("%s", msg))):
        return _build(paths, settings, index_dir, embedder, progress=progress, rebuild=rebuild, read=read)


def _build(
    paths: Sequence[Path],
    settings: Settings,
    index_dir: Path,
    embedder: Embedder | Callable[[], Embedder],
    *,
    progress: bool,
    rebuild: bool,
    read: ReadFiles,
) -> BuildReport:
    t0 = time.perf_counter()
    prev = None if rebuild else _previous(index_dir, settings)
    prev_docs = prev.manifest.documents if prev else {}
    scan = scan_corpus(
        paths,
        max_bytes=int(settings.max_file_mb * 1e6),
        known=prev.documents if prev else None,
        progress=progress,
        follow_external_symlinks=settings.follow_external_symlinks,
        read=read,
    )
    check_has_text(scan, paths)
    docs = scan.documents

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
        documents={d.doc_id: _document_info(d, chunks) for d in docs},
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
        skipped=scan.skipped,
        failed=scan.failed,
        other_files=scan.other_files,
    )


def _document_info(doc: Document, chunks: Sequence[Chunk]) -> DocumentInfo:
    src = doc.source
    return DocumentInfo(
        sha256=doc.sha256,
        chars=len(doc.text),
        chunks=sum(c.doc_id == doc.doc_id for c in chunks),
        source=src.path if src else None,
        size=src.size if src else None,
        mtime_ns=src.mtime_ns if src else None,
        file_sha256=doc.file_sha256,
        extractor=doc.extractor,
        encoding=doc.encoding,
        title=doc.title,
        pages=list(doc.pages) if doc.pages else None,
    )


def _document(row: dict[str, Any], info: DocumentInfo | None) -> Document:
    """A document of ``documents.jsonl`` with what the manifest says of how it was read."""
    if info is None:
        return Document(row["doc_id"], row["text"], row["sha256"])
    return Document(
        row["doc_id"],
        row["text"],
        row["sha256"],
        file_sha256=info.file_sha256,
        extractor=info.extractor,
        encoding=info.encoding,
        title=info.title,
        pages=tuple(info.pages or ()),
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
    """Write every index file into a fresh folder and swap it in whole (see :func:`rag.index_dir.replace_dir`)."""
    import faiss

    def fill(tmp: Path) -> None:
        faiss.serialize_index(faiss_index).tofile(str(tmp / "vectors.faiss"))  # OSError, not RuntimeError
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
        bm25_files = BM25Retriever([c.text for c in chunks]).save(tmp)
        lexicon = lexicon_to_json(build_lexicon(d.text for d in docs))
        (tmp / LEXICON).write_text(json.dumps(lexicon, ensure_ascii=False), encoding="utf-8")
        optional = (*bm25_files, LEXICON)
        manifest.files = {name: sha256_file(tmp / name) for name in (*ARTEFACTS, *optional)}
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")

    replace_dir(index_dir, fill, keep=KEEP_FILES)


def bm25_for(index: IndexData) -> BM25Retriever:
    """The index's saved BM25 (checked on load like every file), or one built from its chunks when the index
    has none (written by an older version) or this bm25s cannot read it."""
    if all(name in index.manifest.files for name in BM25_FILES.values()):
        try:
            return BM25Retriever.load(index.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.info("rebuilding BM25 in memory: the saved one cannot be read (%s)", exc)
    return BM25Retriever([c.text for c in index.chunks])


def dense_retriever(index: IndexData, settings: Settings) -> DenseRetriever:
    """The dense retriever over the index's FAISS index (re-scoring ivfpq candidates with the exact vectors)."""
    rerank = rerank_factor(index.manifest.faiss, settings)
    return DenseRetriever(index.faiss_index, index.chunk_vectors if rerank > 1 else None, rerank)


# --------------------------------------------------------------------------------------------- load
def read_manifest(index_dir: Path) -> Manifest:
    path = index_dir / MANIFEST
    try:
        present = path.exists()
    except OSError as exc:  # a parent folder that may not be searched (Python < 3.12 raises here)
        raise IndexCorrupt(
            f"The index in {index_dir} cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None
    if not present:
        raise IndexMissing(
            f"No index in {index_dir}. Build one with {index_command(index_dir)} "
            f"(or {index_command(index_dir, corpus=['PATH'])} for another corpus)."
        )
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError, OSError) as exc:
        raise IndexCorrupt(
            f"The index manifest {path} is damaged ({exc.__class__.__name__}). Rebuild it with "
            f"{index_command(index_dir, rebuild=True)} (add the corpus PATH if it was not the default)."
        ) from None


def _faiss_mismatch(manifest: Manifest, settings: Settings) -> tuple[str, str] | None:
    """(what differs, how to restore it) when ``vectors.faiss`` was shaped by other settings; else None.

    Only build-time parameters count (kind, hnsw_m, the trained IVF list count); ``ivf_nprobe`` is a
    search-time knob applied at load.
    """
    f = manifest.faiss
    if f.kind != settings.faiss_index:
        return (
            f"faiss_index={f.kind!r} but the settings say faiss_index={settings.faiss_index!r}",
            f"RAG_FAISS_INDEX={f.kind}",
        )
    if f.kind == "hnsw" and f.hnsw_m != settings.hnsw_m:
        return f"hnsw_m={f.hnsw_m} but the settings say hnsw_m={settings.hnsw_m}", f"RAG_HNSW_M={f.hnsw_m}"
    if f.kind == "ivfpq" and f.pq_m != settings.pq_m:
        return f"pq_m={f.pq_m} but the settings say pq_m={settings.pq_m}", f"RAG_PQ_M={f.pq_m}"
    if f.kind in ("ivf", "ivfpq"):
        chunks = manifest.counts.get("chunks", 0)
        expected = ivf_nlist_for(min(chunks, settings.faiss_train_sample), settings.ivf_nlist)
        if f.ivf_nlist != expected:
            restore = f"RAG_IVF_NLIST={f.ivf_nlist_requested or f.ivf_nlist}"
            return (
                f"ivf_nlist={f.ivf_nlist} but the settings give ivf_nlist={expected} for its {chunks} chunks "
                f"(RAG_IVF_NLIST={settings.ivf_nlist}, capped at one IVF list per {IVF_MIN_POINTS_PER_LIST} chunks)",
                restore,
            )
    return None


def check_compatible(manifest: Manifest, settings: Settings, index_dir: Path) -> None:
    """Raise :class:`IndexMismatch` when the index was built with other settings than ``settings``."""
    corpus = _corpus_args(manifest, settings)
    rebuild = index_command(index_dir, rebuild=True, corpus=corpus)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatch(
            f"The index in {index_dir} has format {manifest.format_version}, this version reads {FORMAT_VERSION}. "
            f"Rebuild it with {rebuild}."
        )
    if manifest.embedding.model != settings.embedding_model:
        raise IndexMismatch(
            f"The index in {index_dir} was built with model {manifest.embedding.model!r} but the settings say "
            f"{settings.embedding_model!r}. Run {rebuild} to re-embed, or set RAG_EMBEDDING_MODEL back."
        )
    c = manifest.chunking
    if (c.max_chars, c.overlap_sentences) != (settings.chunk_max_chars, settings.chunk_overlap_sentences):
        raise IndexMismatch(
            f"The index in {index_dir} was chunked with max_chars={c.max_chars}, overlap={c.overlap_sentences}; "
            f"the settings say {settings.chunk_max_chars}, {settings.chunk_overlap_sentences}. Run "
            f"{index_command(index_dir, corpus=corpus)} to re-chunk, or restore those settings "
            "(RAG_CHUNK_MAX_CHARS, RAG_CHUNK_OVERLAP_SENTENCES)."
        )
    mismatch = _faiss_mismatch(manifest, settings)
    if mismatch is not None:
        what, restore = mismatch
        raise IndexMismatch(
            f"The index in {index_dir} was built with {what}. Run {rebuild} to rebuild it with the current "
            f"settings, or set {restore} back."
        )


def load_index(index_dir: Path, settings: Settings, *, check_settings: bool = True) -> IndexData:
    """Load and verify an index directory; every problem becomes a one-line :class:`RagError`."""

    manifest = read_manifest(index_dir)
    if check_settings:
        check_compatible(manifest, settings, index_dir)
    rebuild = index_command(index_dir, rebuild=True, corpus=_corpus_args(manifest, settings))
    hint = f"Rebuild it with {rebuild}."
    # the required files, and the optional ones this index has (BM25, absent from indexes written before it)
    for name in dict.fromkeys([*ARTEFACTS, *manifest.files]):
        path = index_dir / name
        if not path.is_file():
            raise IndexCorrupt(f"The index in {index_dir} is incomplete: {name} is missing. {hint}")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise IndexCorrupt(
                f"The index file {path} cannot be read ({exc.strerror or exc}). Check its permissions, or rebuild it with {rebuild}."
            ) from None
        if digest != manifest.files.get(name):
            raise IndexCorrupt(f"The index file {path} is damaged (checksum mismatch). {hint}")
    try:
        documents = {
            r["doc_id"]: _document(r, manifest.documents.get(r["doc_id"]))
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
        # memory-mapped: replicas on one host share the pages, and a large index costs only what is touched
        chunk_vectors = np.load(index_dir / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r")
        sentence_vectors = np.load(index_dir / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
        faiss_index = read_faiss(index_dir / "vectors.faiss")
        lexicon = (
            lexicon_from_json(json.loads((index_dir / LEXICON).read_text(encoding="utf-8")))
            if LEXICON in manifest.files
            else None
        )
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        raise IndexCorrupt(f"The index in {index_dir} cannot be read ({exc.__class__.__name__}). {hint}") from None
    if (
        faiss_index.ntotal != len(chunks)
        or len(chunk_vectors) != len(chunks)
        or len(sentence_vectors) != len(sentences)
    ):
        raise IndexCorrupt(f"The index in {index_dir} is inconsistent (row counts differ). {hint}")
    configure(faiss_index, manifest.faiss, settings)
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
        lexicon=lexicon,
    )
