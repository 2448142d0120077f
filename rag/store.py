"""Building the index directory: incrementally, into a new generation published whole or not at all.

Each build writes one generation folder (see :mod:`rag.generations`), holding:

- ``manifest.json``: format version, model, chunking and FAISS parameters, the corpus, each document's
  content hash, counts, and the sha256 of every other file (checked on load);
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

Loading is :mod:`rag.index_load` (its names are re-exported here); :func:`open_index` is how a reader that
may build on first use gets its index.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import __version__
from rag.chunking import chunk_text
from rag.config import Settings
from rag.corpus import ReadFiles, check_has_text, read_files, scan_corpus
from rag.digests import sha256_file
from rag.errors import IndexMissing, RagError
from rag.generations import POINTER, PREFIX, is_generation_name, resolve, write_generation
from rag.index_dir import check_replaceable, restorable, wait_for_writer, writer_lock
from rag.index_load import (
    ARTEFACTS,
    DEFAULT_INDEX_DIR,
    LEXICON,
    MANIFEST,
    IndexData,
    SentenceRef,
    bm25_for,
    check_compatible,
    corpus_for,
    dense_retriever,
    index_command,
    load_index,
    read_manifest,
    recorded_corpus,
    update_command,
)
from rag.manifest import FORMAT_VERSION, ChunkingInfo, DocumentInfo, EmbeddingInfo, Manifest
from rag.reader.spans import build_lexicon, lexicon_to_json
from rag.retrieval import BM25_FILES, BM25Retriever
from rag.types import Chunk, Document
from rag.vector_index import ivf_nlist_for, make_faiss_index

if TYPE_CHECKING:
    from rag.embedding import Embedder

log = logging.getLogger(__name__)

__all__ = [
    "ARTEFACTS",
    "DEFAULT_INDEX_DIR",
    "LEXICON",
    "MANIFEST",
    "BuildReport",
    "IndexData",
    "SentenceRef",
    "bm25_for",
    "build_index",
    "check_compatible",
    "dense_retriever",
    "index_command",
    "ivf_nlist_for",
    "load_index",
    "open_index",
    "read_manifest",
    "recorded_corpus",
    "update_command",
]

KEEP_FILES = {"README.md", ".gitkeep"}  # what a user may keep in an index folder besides the index
LEGACY_FILES = {MANIFEST, *ARTEFACTS, *BM25_FILES.values(), LEXICON}  # the files of a pre-generation index
DEFAULT_CORPUS_DIR: Path = Settings.model_fields["corpus_dir"].default


def _ours(name: str) -> bool:
    """Is ``name`` something an index folder may hold (so replacing the folder's index loses nothing else)?"""
    return (
        name in KEEP_FILES
        or name in LEGACY_FILES
        or name == POINTER
        or name.startswith((PREFIX, f".{POINTER}.tmp-"))
        or is_generation_name(name)
    )


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
    if resolve(index_dir) is None:
        return None
    try:
        data = load_index(index_dir, settings, check_settings=False)
    except RagError as exc:
        log.warning("rebuilding from scratch: the existing index is not reusable (%s)", exc)
        return None
    return data if _compatible(data.manifest, settings) else None


def build_index(
    paths: Sequence[Path] | None,
    settings: Settings,
    index_dir: Path,
    embedder: Embedder | Callable[[], Embedder],
    *,
    progress: bool = False,
    rebuild: bool = False,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    on_replace: Callable[[str], None] | None = None,
    read: ReadFiles = read_files,
) -> BuildReport:
    """Index the documents under ``paths`` (every format :mod:`rag.extract` reads) into ``index_dir``.

    Unchanged files (same bytes, same extractor) are not extracted again, and unchanged documents (same
    text, same settings) reuse their chunks and vectors; files that cannot be read are reported, not fatal.
    The new index is written to a new generation folder and published by renaming one pointer file, so an
    interrupted build leaves the previous index intact and a reader never sees parts of two builds. ``embedder`` may be a factory, called only when something must be embedded.

    ``paths`` None: the corpus the index records (read under the writer lock, after a previous index that a
    killed writer left aside is restored), or ``settings.corpus_dir`` for a new index. Other paths than the
    recorded ones replace that corpus, and ``on_replace`` (default: a logged warning) is told so in one line.

    One writer at a time per index directory: another build of the same directory waits for this one
    (``on_wait`` is told who holds it), or raises :class:`~rag.errors.IndexBusy` when not ``wait``.
    ``read`` reads the files that must be read (:mod:`rag.scale.ray_index` passes one that runs on Ray, and an
    embedder that embeds on Ray); everything else is the same code whichever runs it.
    """
    check_replaceable(index_dir, markers=(POINTER, MANIFEST), allowed=_ours)
    with writer_lock(index_dir, wait=wait, on_wait=on_wait or (lambda msg: log.warning("%s", msg))):
        corpus = corpus_for(index_dir, paths, settings, on_replace or (lambda msg: log.warning("%s", msg)))
        return _build(corpus, settings, index_dir, embedder, progress=progress, rebuild=rebuild, read=read)


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
        markdown_rendered=settings.markdown_rendered,
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
        corpus_resolved=[str(Path(p).absolute().resolve()) for p in paths],
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
    """Write every index file into a new generation and publish it (see :func:`rag.generations.write_generation`)."""
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

    write_generation(index_dir, fill, legacy_files=LEGACY_FILES, before_publish=before_publish_hook)


def _as_path(path: Path) -> str:
    """``path`` as a message shows it: a bare relative name reads as a path (``./index``, not ``index``)."""
    shown = str(path)
    return shown if Path(path).is_absolute() or shown.startswith(".") else f"./{shown}"


def before_publish_hook() -> None:
    """Runs between a new generation being complete and its publication (a test hook: tests hold a writer
    in that gap, or kill it there)."""


# --------------------------------------------------------------------------------------------- readers
def first_use_allowed(index_dir: Path, settings: Settings) -> bool:
    """May a reader build this index? Only the default index (``index/``), from the configured corpus."""
    return Path(index_dir) == DEFAULT_INDEX_DIR


def open_index(
    settings: Settings,
    index_dir: Path,
    embedder: Embedder | Callable[[], Embedder],
    *,
    progress: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> IndexData:
    """A reader's index: the one in ``index_dir`` as it is now (a reader never replaces an index).

    When there is none, a writer building it is waited for. Only the default index (``index/``) that has
    never existed is built, from ``settings.corpus_dir``, under the writer lock after checking again there
    (where a previous index that a killed writer left aside is restored instead). Any other missing index
    is :class:`IndexMissing`, naming the `rag index` command that builds it.
    """
    say = on_message or (lambda msg: log.info("%s", msg))
    try:
        return load_index(index_dir, settings)
    except IndexMissing:
        pass
    wait_for_writer(index_dir, say)  # a first build in progress: its index, once published
    try:
        return load_index(index_dir, settings)
    except IndexMissing as exc:
        missing = exc
    if not first_use_allowed(index_dir, settings):
        if restorable(index_dir):
            raise IndexMissing(
                f"{missing} A previous index that an interrupted `rag index` left aside is beside it: "
                f"{index_command(index_dir)} restores it first."
            ) from None
        raise missing
    if not Path(settings.corpus_dir).is_dir() and not restorable(index_dir):
        raise IndexMissing(
            f"{missing} (There is no {settings.corpus_dir}/ here to build the sample index from.)"
        ) from None
    with writer_lock(index_dir, on_wait=say):  # restores what a killed writer left aside, first
        if resolve(index_dir) is None:
            say(f"no index in {_as_path(index_dir)} yet: building it from {_as_path(settings.corpus_dir)}/ ...")
            _build(
                [settings.corpus_dir], settings, index_dir, embedder, progress=progress, rebuild=False, read=read_files
            )
    return load_index(index_dir, settings)
