"""Loading an index: one consistent generation, verified, with one-line errors that say how to fix them.

See :mod:`rag.generations` for the folder's layout and :mod:`rag.store` for building it. The file names and
the `rag index` command lines of the error messages live here, so that both sides share them.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from rag.config import Settings
from rag.errors import CorpusError, IndexCorrupt, IndexMismatch, IndexMissing
from rag.generations import MANIFEST, Generation, GenerationGone, reading, resolve
from rag.manifest import FORMAT_VERSION, DocumentInfo, Manifest
from rag.reader.spans import Lexicon, lexicon_from_json
from rag.retrieval import BM25_FILES, BM25Retriever, DenseRetriever
from rag.safe_open import NotSafe
from rag.safe_open import sha256_checked as sha256_file  # opened, then checked: regular files only
from rag.types import Chunk, Document, Span
from rag.vector_index import IVF_MIN_POINTS_PER_LIST, configure, ivf_nlist_for, read_faiss, rerank_factor

log = logging.getLogger(__name__)

__all__ = ["MANIFEST", "IndexData", "SentenceRef", "load_index", "read_manifest"]

ARTEFACTS = (
    "vectors.faiss",
    "chunks.jsonl",
    "chunk_vectors.npy",
    "sentences.jsonl",
    "sentence_vectors.npy",
    "documents.jsonl",
)
LEXICON = "lexicon.json"  # optional: absent from indexes written before it
DEFAULT_INDEX_DIR: Path = Settings.model_fields["index_dir"].default
LOAD_ATTEMPTS = 20  # generations tried in turn while writers keep publishing new ones


@dataclass(frozen=True)
class SentenceRef:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class IndexData:
    """Everything a loaded index holds."""

    path: Path  # the folder its files were read from (the generation's)
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentences: list[SentenceRef]
    sentence_vectors: np.ndarray
    sentence_row: dict[tuple[str, int, int], int]
    faiss_index: Any
    lexicon: Lexicon | None = None  # the corpus's capitalisation evidence for the reader (None: older index)
    generation: str | None = None  # the generation folder it was read from (None: the legacy layout)
    bm25: BM25Retriever | None = None  # the saved BM25, read with the other files (None: built on demand)

    @property
    def built_at(self) -> str:
        """When the index was built, as ``GET /health`` and the answer JSON write it (ISO 8601, UTC)."""
        return self.manifest.created_at.isoformat().replace("+00:00", "Z")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------- commands
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


def bm25_for(index: IndexData) -> BM25Retriever:
    """The index's saved BM25 (checked on load like every file), or one built from its chunks when the index
    has none (written by an older version) or this bm25s cannot read it."""
    if index.bm25 is not None:
        return index.bm25
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
def _missing(index_dir: Path) -> IndexMissing:
    return IndexMissing(
        f"No index in {index_dir}. Build one with {index_command(index_dir)} "
        f"(or {index_command(index_dir, corpus=['PATH'])} for another corpus)."
    )


def _parse_manifest(raw: bytes, path: Path, index_dir: Path) -> Manifest:
    try:
        return Manifest.model_validate_json(raw.decode("utf-8"))
    except (ValidationError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(
            f"The index manifest {path} is damaged ({exc.__class__.__name__}). Rebuild it with "
            f"{index_command(index_dir, rebuild=True)} (add the corpus PATH if it was not the default)."
        ) from None


def read_manifest(index_dir: Path) -> Manifest:
    """The manifest of the index's current generation (:class:`IndexMissing` when there is none)."""
    for _ in range(LOAD_ATTEMPTS):
        gen = resolve(index_dir)
        if gen is None:
            raise _missing(index_dir)
        try:
            with reading(gen) as raw:
                return _parse_manifest(raw, gen.path / MANIFEST, index_dir)
        except GenerationGone:
            _check_not_dangling(index_dir, gen)
    raise _busy(index_dir)


def _check_not_dangling(index_dir: Path, gen: Generation) -> None:
    """After ``gen`` was found gone: fine if a writer has published another since; damage if it is still
    the one the pointer names."""
    if resolve(index_dir) == gen:
        raise IndexCorrupt(
            f"The index in {index_dir} names the generation {gen.name}, which is missing. Run "
            f"{index_command(index_dir)} to repair it (it goes back to the newest complete generation, then "
            "updates it)."
        )


def _busy(index_dir: Path) -> IndexCorrupt:
    return IndexCorrupt(
        f"The index in {index_dir} was replaced {LOAD_ATTEMPTS} times while it was being read. Try again "
        "when the process re-indexing it in a loop is done."
    )


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
    """Load and verify the index's current generation; every problem becomes a one-line :class:`RagError`.

    Every file comes from the one generation the pointer named when loading began (held against removal
    meanwhile), so a build published during the load is never mixed in. A check that fails on a generation
    that is no longer current is retried on the current one; only one that fails twice on the same
    generation is reported as damage.
    """
    failed: set[str] = set()
    for _ in range(LOAD_ATTEMPTS):
        gen = resolve(index_dir)
        if gen is None:
            raise _missing(index_dir)
        try:
            with reading(gen) as raw:
                return _load_generation(gen, raw, index_dir, settings, check_settings)
        except GenerationGone:
            _check_not_dangling(index_dir, gen)
        except IndexCorrupt:
            if resolve(index_dir) == gen and gen.ident in failed:
                raise
            failed.add(gen.ident)
    raise _busy(index_dir)


def _load_generation(
    gen: Generation, raw: bytes, index_dir: Path, settings: Settings, check_settings: bool
) -> IndexData:
    folder = gen.path
    opened_hook(folder)
    manifest = _parse_manifest(raw, folder / MANIFEST, index_dir)
    if check_settings:
        check_compatible(manifest, settings, index_dir)
    rebuild = index_command(index_dir, rebuild=True, corpus=_corpus_args(manifest, settings))
    hint = f"Rebuild it with {rebuild}."
    # the required files, and the optional ones this index has (BM25, absent from indexes written before it)
    for name in dict.fromkeys([*ARTEFACTS, *manifest.files]):
        path = folder / name
        try:
            digest = sha256_file(path)
        except FileNotFoundError:
            raise IndexCorrupt(f"The index in {index_dir} is incomplete: {name} is missing. {hint}") from None
        except NotSafe as exc:
            raise IndexCorrupt(f"The index file {path} is damaged ({exc.reason}). {hint}") from None
        except OSError as exc:
            raise IndexCorrupt(
                f"The index file {path} cannot be read ({exc.strerror or exc}). Check its permissions, or rebuild it with {rebuild}."
            ) from None
        if digest != manifest.files.get(name):
            raise IndexCorrupt(f"The index file {path} is damaged (checksum mismatch). {hint}")
    try:
        documents = {
            r["doc_id"]: _document(r, manifest.documents.get(r["doc_id"]))
            for r in _read_jsonl(folder / "documents.jsonl")
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
            for r in _read_jsonl(folder / "chunks.jsonl")
        ]
        sentences = [SentenceRef(r["doc_id"], r["start"], r["end"]) for r in _read_jsonl(folder / "sentences.jsonl")]
        # memory-mapped: replicas on one host share the pages, and a large index costs only what is touched
        chunk_vectors = np.load(folder / "chunk_vectors.npy", allow_pickle=False, mmap_mode="r")
        sentence_vectors = np.load(folder / "sentence_vectors.npy", allow_pickle=False, mmap_mode="r")
        faiss_index = read_faiss(folder / "vectors.faiss")
        lexicon = (
            lexicon_from_json(json.loads((folder / LEXICON).read_text(encoding="utf-8")))
            if LEXICON in manifest.files
            else None
        )
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, EOFError, IndexError, AttributeError) as exc:
        raise IndexCorrupt(f"The index in {index_dir} cannot be read ({exc.__class__.__name__}). {hint}") from None
    if (
        faiss_index.ntotal != len(chunks)
        or len(chunk_vectors) != len(chunks)
        or len(sentence_vectors) != len(sentences)
    ):
        raise IndexCorrupt(f"The index in {index_dir} is inconsistent (row counts differ). {hint}")
    try:
        problem = _inconsistency(manifest, documents, chunks, sentences, chunk_vectors, sentence_vectors, faiss_index)
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type (a string for an offset)
        problem = f"a value of the wrong type: {exc.__class__.__name__}"
    if problem is not None:
        raise IndexCorrupt(f"The index in {index_dir} is inconsistent ({problem}). {hint}")
    try:
        configure(faiss_index, manifest.faiss, settings)
    except (AttributeError, RuntimeError, TypeError):  # e.g. a manifest naming hnsw over a flat vectors.faiss
        raise IndexCorrupt(
            f"The index in {index_dir} is inconsistent (vectors.faiss is not the {manifest.faiss.kind!r} index "
            f"its manifest names). {hint}"
        ) from None
    return IndexData(
        path=folder,
        manifest=manifest,
        documents=documents,
        chunks=chunks,
        chunk_vectors=chunk_vectors,
        sentences=sentences,
        sentence_vectors=sentence_vectors,
        sentence_row={(s.doc_id, s.start, s.end): i for i, s in enumerate(sentences)},
        faiss_index=faiss_index,
        lexicon=lexicon,
        generation=gen.name,
        bm25=_saved_bm25(folder, manifest),
    )


def _inconsistency(
    manifest: Manifest,
    documents: dict[str, Document],
    chunks: Sequence[Chunk],
    sentences: Sequence[SentenceRef],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    faiss_index: Any,
) -> str | None:
    """What breaks the invariants queries rely on (files whose checksums were recomputed after an edit), or
    None: rows in order, ids that exist, offsets within their document, one vector width, the counts."""
    dim = manifest.embedding.dim
    for name, vectors in (("chunk_vectors.npy", chunk_vectors), ("sentence_vectors.npy", sentence_vectors)):
        if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != dim) or vectors.dtype.kind != "f":
            return f"{name} is not rows of {dim} numbers"
    if getattr(faiss_index, "d", dim) != dim:
        return f"vectors.faiss holds vectors of {faiss_index.d} numbers, the manifest says {dim}"
    for key, have in (("documents", len(documents)), ("chunks", len(chunks)), ("sentences", len(sentences))):
        if key in manifest.counts and manifest.counts[key] != have:
            return f"{have} {key}, the manifest counts {manifest.counts[key]}"
    for i, c in enumerate(chunks):
        doc = documents.get(c.doc_id)
        if c.row != i:
            return f"chunk row {c.row} at line {i + 1}"
        if doc is None:
            return f"a chunk of {c.doc_id!r}, which is not among the documents"
        if not (0 <= c.start <= c.end <= len(doc.text)) or doc.text[c.start : c.end] != c.text:
            return f"a chunk of {c.doc_id!r} that is not its text at {c.start}:{c.end}"
        if any(not (0 <= sp.start <= sp.end <= len(doc.text)) for sp in c.sentences):
            return f"a sentence of a chunk of {c.doc_id!r} outside the document"
    for s in sentences:
        doc = documents.get(s.doc_id)
        if doc is None:
            return f"a sentence of {s.doc_id!r}, which is not among the documents"
        if not (0 <= s.start <= s.end <= len(doc.text)):
            return f"a sentence of {s.doc_id!r} outside the document ({s.start}:{s.end})"
    for doc in documents.values():
        if any(not (0 <= p <= len(doc.text)) for p in doc.pages):
            return f"a page of {doc.doc_id!r} that starts outside the document"
    return None


def _saved_bm25(folder: Path, manifest: Manifest) -> BM25Retriever | None:
    """The saved BM25, read while the generation is held (None: the index has none, or it cannot be read)."""
    if not all(name in manifest.files for name in BM25_FILES.values()):
        return None
    try:
        bm25 = BM25Retriever.load(folder)
        if bm25._n != manifest.counts.get("chunks", bm25._n):
            raise ValueError(f"it holds {bm25._n} chunks, the index {manifest.counts['chunks']}")
        return bm25
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, AttributeError) as exc:
        log.info("rebuilding BM25 in memory: the saved one cannot be read (%s)", exc)
        return None


def opened_hook(folder: Path) -> None:
    """Called with a generation's folder once a reader holds it, before its files are read (a test hook:
    tests slow readers down here to widen the window a writer could swap in)."""


# --------------------------------------------------------------------------------------------- corpus
def recorded_corpus(index_dir: Path) -> list[Path] | None:
    """The corpus paths the index in ``index_dir`` was built from (what `rag index` with no PATH re-indexes),
    or None when there is no index there. A path recorded relative (by an older version, or as typed) that
    leads elsewhere from this folder than where it led then is given absolute."""
    try:
        manifest = read_manifest(index_dir)
    except (IndexMissing, IndexCorrupt):  # none, or a damaged manifest: the corpus it records is unknown
        return None
    if manifest.corpus_resolved is None or len(manifest.corpus_resolved) != len(manifest.corpus):
        return [Path(p) for p in manifest.corpus]
    return [
        Path(given) if Path(given).absolute().resolve() == Path(resolved) else Path(resolved)
        for given, resolved in zip(manifest.corpus, manifest.corpus_resolved)
    ]


def corpus_for(
    index_dir: Path, paths: Sequence[Path] | None, settings: Settings, on_replace: Callable[[str], None]
) -> list[Path]:
    """What a build indexes (under the writer lock): see :func:`build_index`."""
    recorded = recorded_corpus(index_dir)
    if paths is None:
        if recorded is None:
            return [settings.corpus_dir]
        for path in recorded:
            if not path.exists():
                raise CorpusError(
                    f"The index in {index_dir} was built from {path}, which is not there now. Name the corpus "
                    f"to index: {index_command(index_dir, corpus=['PATH'])}."
                )
        return recorded
    if recorded is not None and _key(recorded) != _key(paths):
        on_replace(
            f"the index in {index_dir} was built from {' '.join(map(str, recorded))}; it is replaced by an "
            f"index of {' '.join(map(str, paths))}"
        )
    return list(paths)


def _key(paths: Sequence[Path]) -> list[str]:
    return sorted(str(Path(p).absolute().resolve()) for p in paths)
