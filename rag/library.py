"""The Python API: :func:`index` builds an index, :func:`open` loads one and answers questions.

Importing this module (and :mod:`rag`) loads nothing heavy: numpy, FAISS, ONNX Runtime and the models are
imported by the first :func:`index` or :func:`open`. Nothing here prints or exits: problems are the named
exceptions of :mod:`rag.errors`, with the same fix-it message the ``rag`` command prints, and warnings are
returned (:attr:`IndexSummary.warnings`, :attr:`QA.warnings`) instead of shown. The ``rag`` logger still
logs them, for an application that configures logging.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import IndexMissing, InvalidSetting
from rag.types import Document, Result

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.pipeline import Pipeline
    from rag.store import BuildReport

__all__ = ["QA", "IndexSummary", "index", "open", "settings_with"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------------------- settings
def settings_with(caller: str, overrides: dict[str, Any]) -> Settings:
    """The settings (``RAG_*`` variables and ``.env``, as for the ``rag`` command) with ``overrides`` on top.

    An unknown name is a :class:`TypeError` listing the valid ones; a value a setting cannot take is
    :class:`~rag.errors.InvalidSetting` saying which and why.
    """
    from pydantic import ValidationError

    from rag.config import Settings

    valid = sorted(Settings.model_fields)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        hints = [
            f"{n!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(n, valid, 1)) else repr(n)
            for n in unknown
        ]
        raise TypeError(
            f"{caller}() got unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(hints)}. "
            f"Valid settings: {', '.join(valid)}."
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        where = f"{name}={overrides[name]!r}" if name in overrides else f"RAG_{name.upper()} (environment or .env)"
        raise InvalidSetting(f"bad setting {where}: {err['msg']}.") from None


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20):
        raise InvalidSetting(f"top_k must be a whole number from 1 to 20 (got {top_k!r}).")


@contextmanager
def _collected(into: list[str]) -> Iterator[None]:
    """Collect what the ``rag`` loggers warn about meanwhile (a handler there also keeps Python's last-resort
    handler from printing it to stderr when the application configured no logging)."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("rag")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


# ----------------------------------------------------------------------------------------- indexing
@dataclass(frozen=True)
class IndexSummary:
    """What :func:`index` did, as ``rag index`` reports it (``str(summary)`` is its summary lines)."""

    index_dir: Path
    documents: int  # documents in the index now
    chunks: int
    added: tuple[str, ...]  # doc ids
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    embedded: int  # texts embedded by this build (unchanged documents reuse their vectors)
    seconds: float
    skipped: tuple[tuple[str, str], ...] = ()  # (doc id, reason): files with nothing to index
    failed: tuple[tuple[str, str], ...] = ()  # (doc id, reason): broken or unreadable files
    other_files: int = 0  # files of formats rag does not read
    warnings: tuple[str, ...] = ()  # the `warning:` lines `rag index` prints, without the prefix

    @classmethod
    def from_report(cls, report: BuildReport, warnings: Sequence[str] = ()) -> IndexSummary:
        kept = {f.name for f in fields(cls)} - {"index_dir", "warnings"}
        return cls(index_dir=report.path, warnings=tuple(warnings), **{k: getattr(report, k) for k in kept})

    def lines(self) -> list[str]:
        """The summary lines of ``rag index`` (after its warnings)."""

        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        out = [
            f"indexed {n(self.documents, 'document')} into {n(self.chunks, 'chunk')} in {self.index_dir} "
            f"({len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged; {n(self.embedded, 'text')} embedded; {self.seconds:.1f} s)"
        ]
        if self.skipped or self.failed or self.other_files:
            parts = [f"{self.documents} indexed", f"{len(self.skipped)} skipped", f"{len(self.failed)} failed"]
            if self.other_files:
                parts.append(f"{self.other_files} of other formats ignored")
            why = " (the warnings above say why)" if self.skipped or self.failed else ""
            out.append(f"files: {', '.join(parts)}{why}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def index(
    paths: PathLike | Sequence[PathLike] | None = None,
    *,
    index_dir: PathLike | None = None,
    rebuild: bool = False,
    wait: bool = True,
    **overrides: Any,
) -> IndexSummary:
    """Build or update an index, like ``rag index PATH ... --index-dir DIR``; return what it did.

    ``paths``: files and folders (read recursively; .txt, .md, .pdf, .html, .docx), one path or a list.
    None re-indexes the corpus the index records (for a new index: ``corpus_dir``, by default ``seeds/``);
    other paths replace the recorded corpus (one warning says so). Unchanged files are not read again.
    ``index_dir``: where the index goes (default ``index_dir``: ``index/``). ``rebuild``: re-embed
    everything. ``wait``: when another process is writing the same index, wait for it (else raise
    :class:`~rag.errors.IndexBusy`). Other keywords are settings by name (``faiss_index="hnsw"``,
    ``chunk_max_chars=800``; see :class:`rag.config.Settings`), over ``RAG_*`` variables.

    Files that cannot be indexed do not stop the build: the summary's ``warnings`` name each with the reason
    (``skipped``/``failed`` list them). Nothing is printed.

    >>> summary = rag.index(["docs/", "notes.md"], index_dir="my-index")  # doctest: +SKIP
    >>> summary.documents, summary.warnings  # doctest: +SKIP
    (2, ())

    Raises :class:`~rag.errors.CorpusError` (a missing path, nothing readable), ``IndexBusy``,
    ``IndexWriteError``, ``ModelError``, ``InvalidSetting``, and ``TypeError`` for an unknown setting.
    """
    s = settings_with("rag.index", {**overrides, **({"index_dir": index_dir} if index_dir is not None else {})})
    if paths is None:
        corpus = None
    elif isinstance(paths, (str, os.PathLike)):  # one path, not its characters
        corpus = [Path(paths)]
    else:
        corpus = [Path(p) for p in paths]
    from rag.embedding import load_embedder
    from rag.store import build_index

    warnings: list[str] = []
    with _collected(warnings):
        report = build_index(
            corpus,
            s,
            s.index_dir,
            lambda: load_embedder(s, rebuild=rebuild),
            rebuild=rebuild,
            wait=wait,
            on_wait=lambda msg: log.info("%s", msg),
            on_replace=lambda msg: log.warning("%s", msg),
        )
    return IndexSummary.from_report(report, warnings)


# ----------------------------------------------------------------------------------------- asking
class QA:
    """A loaded, verified index and its models, ready to answer (what :func:`open` returns).

    One ``QA`` may be shared by threads: its questions are answered one at a time, as ``rag serve`` does.
    It keeps answering from the index it loaded; :func:`open` again to see a newer build.
    """

    def __init__(self, pipeline: Pipeline, settings: Settings, warnings: Sequence[str] = ()) -> None:
        self._pipeline, self.settings = pipeline, settings
        self.warnings: tuple[str, ...] = tuple(warnings)
        """Warnings found while opening, e.g. indexed files edited since (the `warning:` lines of ``rag ask``)."""
        self._lock = threading.Lock()

    @property
    def index_dir(self) -> Path:
        return Path(self.settings.index_dir)

    @property
    def index_built_at(self) -> str:
        """The index's build time, as every result's ``index_built_at`` and ``GET /health`` give it."""
        assert self._pipeline.index is not None
        return self._pipeline.index.built_at

    def ask(self, question: str, top_k: int | None = None) -> Result:
        """Answer ``question`` with spans copied from the documents: ``rag ask QUESTION --top-k N``.

        ``result.answers`` is best first (empty: the documents do not answer; then ``result.closest`` holds
        the passages that came closest); each answer has ``text``, ``score`` (0..1) and ``citations``
        (``doc_id``, ``start``, ``end``, ``quote``, ``quote_start``, ``quote_end``, ``page``, ``doc_sha256``),
        offsets into :meth:`document`'s ``text``. ``result.conflict`` (a :class:`~rag.types.Conflict`, else
        None) says when answers from different documents disagree. ``result.to_dict()`` is the JSON of
        ``rag ask --json``.
        ``top_k``: most answers, 1 to 20 (default the ``top_k`` setting, 3).

        Raises :class:`~rag.errors.InvalidQuestion` (empty, blank, too long) and
        :class:`~rag.errors.InvalidSetting` (a bad ``top_k``).
        """
        return self.ask_batch([question], top_k)[0]

    def ask_batch(self, questions: Sequence[str], top_k: int | None = None) -> list[Result]:
        """Answer many questions (their embeddings computed in one batch); one :class:`Result` each, in order.

        Every question is checked before any is answered, so a bad one raises before work is done.
        """
        if isinstance(questions, str):
            raise TypeError("ask_batch() takes a list of questions; for one question use ask().")
        _check_top_k(top_k)
        with self._lock:
            return self._pipeline.ask_batch(list(questions), top_k)

    def documents(self) -> tuple[str, ...]:
        """The ids of the indexed documents (paths relative to the corpus root, with ``/``), sorted."""
        assert self._pipeline.index is not None
        return tuple(sorted(self._pipeline.index.documents))

    def document(self, doc_id: str) -> Document:
        """The indexed document ``doc_id``: its ``text`` is what citation offsets index into
        (``document(c.doc_id).text[c.start:c.end]`` is the answer), with ``sha256`` and, for a PDF, ``pages``
        (where each page starts). Raises :class:`~rag.errors.DocumentNotFound` for an id not indexed."""
        from rag.errors import DocumentNotFound

        assert self._pipeline.index is not None
        docs = self._pipeline.index.documents
        doc = docs.get(doc_id) if isinstance(doc_id, str) else None
        if doc is None:
            near = difflib.get_close_matches(str(doc_id), list(docs), 1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise DocumentNotFound(
                f"No document {doc_id!r} in the index in {self.index_dir}.{hint} "
                f"documents() lists the {len(docs)} indexed ids."
            )
        return doc

    def __repr__(self) -> str:
        idx = self._pipeline.index
        size = f"{len(idx.documents)} documents, {len(idx.chunks)} chunks" if idx is not None else "no index"
        return f"<rag.QA {self.index_dir}: {size}, reader {self.settings.reader}>"


def open(index_dir: PathLike | None = None, **overrides: Any) -> QA:  # noqa: A001 - rag.open, by design
    """Load and verify the index in ``index_dir`` and its models, like ``rag serve`` does; return a :class:`QA`.

    >>> qa = rag.open("index", reader="heuristic", top_k=5)  # doctest: +SKIP
    >>> qa.ask("Who opposed the price floor?").answers[0].text  # doctest: +SKIP
    'Washington'

    ``index_dir``: an index built by :func:`index` or ``rag index`` (default: the ``index_dir`` setting,
    ``index/``). Never builds one: a folder without an index is :class:`~rag.errors.IndexNotFound`, whose
    message names the ``rag index`` command that builds it (a build in progress there is waited for).
    Keywords are settings by name (``reader="heuristic"``, ``top_k=5``, ``retrieval="bm25"``; see
    :class:`rag.config.Settings`), over ``RAG_*`` variables and ``.env`` as for the ``rag`` command.

    Raises :class:`~rag.errors.IndexNotFound`, :class:`~rag.errors.IndexDamaged` (a file missing or altered),
    :class:`~rag.errors.IndexMismatch` (built with other settings or another model),
    :class:`~rag.errors.ModelError`, :class:`~rag.errors.InvalidSetting`, and ``TypeError`` for an unknown
    setting name (the message lists the valid ones). Nothing is printed, and nothing written but rag's model
    cache (``model_cache_dir``: the embedder's ONNX export and the models' verified checksums, once per machine).
    """
    from rag.freshness import staleness_warning
    from rag.index_dir import wait_for_writer
    from rag.pipeline import Pipeline

    s = settings_with("rag.open", {**overrides, **({"index_dir": index_dir} if index_dir is not None else {})})
    warnings: list[str] = []
    with _collected(warnings):
        try:
            pipeline = Pipeline.from_settings(s, build_if_missing=False)
        except IndexMissing:
            wait_for_writer(s.index_dir, lambda msg: log.info("%s", msg))  # a first build being published
            pipeline = Pipeline.from_settings(s, build_if_missing=False)
        stale = staleness_warning(pipeline.index, s, s.index_dir)
    if stale:
        warnings.append(stale)
    return QA(pipeline, s, warnings)
