"""Reading a corpus: the files under one or more paths, in every format :mod:`rag.extract` reads.

A file that cannot be indexed (damaged, empty, scanned, encrypted, too large, unreadable) costs one
warning line naming it and the reason; the scan goes on, and its summary counts what was indexed,
skipped and failed. A file whose bytes and extractor are those of the previous index is not extracted
again: its text is taken from that index.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rag.errors import CorpusError
from rag.extract import FORMATS, Unreadable, extract, extractor_id, format_of
from rag.types import Document, SourceStamp

log = logging.getLogger(__name__)

SUFFIXES = tuple(FORMATS)
_SHOWN_SUFFIXES = ", ".join(SUFFIXES)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CorpusScan:
    """What a scan of the corpus found."""

    documents: tuple[Document, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (doc id, reason): readable files with nothing to index
    failed: tuple[tuple[str, str], ...] = ()  # (doc id, reason): broken or unreadable files
    other_files: int = 0  # files of formats that are not read (images, spreadsheets, ...)

    def summary(self) -> str:
        """One line: how many files were indexed, skipped and failed."""
        parts = [f"{len(self.documents)} files read"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.other_files:
            parts.append(f"{self.other_files} of other formats ignored")
        return ", ".join(parts)


def _files_under(root: Path, follow_external: bool = False) -> Iterable[tuple[Path, str, str | None]]:
    """Yield (file, doc_id, why it is skipped or None) for every file under ``root`` (hidden ones excluded).

    doc_id is relative to ``root``, with '/'. A symlink whose target lies outside ``root`` is skipped unless
    ``follow_external`` (anyone who can drop a link into a watched folder could otherwise publish any file
    the service can read); broken links, symlink loops and links to folders (never walked) are skipped.
    """
    if root.is_file():
        yield root, root.name, None
        return
    real_root = root.resolve()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders (.git, .DS_Store, ...)
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):  # a missing target, or a loop (RuntimeError before Python 3.13)
                yield path, rel.as_posix(), "a broken symlink or a symlink loop"
                continue
            if target.is_dir():
                yield path, rel.as_posix(), "a symlink to a folder (folders reached through a symlink are not read)"
                continue
            if not follow_external and not target.is_relative_to(real_root):
                yield (
                    path,
                    rel.as_posix(),
                    (
                        "a symlink to a file outside the corpus folder; set RAG_FOLLOW_EXTERNAL_SYMLINKS=true to index it"
                    ),
                )
                continue
        if path.is_file():
            yield path, rel.as_posix(), None


@dataclass(frozen=True)
class Unchanged:
    """What :func:`read_file` gives for a file whose bytes and extractor are those of the known document."""

    source: SourceStamp | None


@dataclass(frozen=True)
class ReadJob:
    """One file to read: its path, its doc id, and the previous index's document of that id (or None)."""

    path: Path
    doc_id: str
    known: Document | None = None
    markdown_rendered: bool = False  # Settings.markdown_rendered: a .md file as its rendered text


ReadResult = Document | Unreadable
# Reads a batch of files, in order; an element is the document or why it cannot be indexed. The default
# reads them one by one (:func:`read_files`); ``rag index --ray`` reads them on a Ray cluster.
ReadFiles = Callable[[Sequence[ReadJob], "int | None", bool], list[ReadResult]]


def read_file(
    path: Path,
    doc_id: str,
    *,
    max_bytes: int | None = None,
    known_as: tuple[str | None, str | None] | None = None,
    markdown_rendered: bool = False,
) -> Document | Unchanged:
    """Read and extract one file, or say it is :class:`Unchanged` when its byte sha256 and extractor are
    ``known_as``; raise :class:`Unreadable` saying why it cannot be indexed.

    ``markdown_rendered``: a ``.md`` file is indexed as its rendered text (format ``markdown``), not as read
    (``text``); the two have different extractor ids, so switching re-extracts the file."""
    fmt = format_of(path.name, markdown_rendered)
    if fmt is None:
        raise Unreadable(f"not a format rag reads ({_SHOWN_SUFFIXES})", "skipped")
    source = stamp(path)
    if max_bytes is not None and source is not None and source.size > max_bytes:
        raise Unreadable(
            f"{source.size / 1e6:.0f} MB, over the {max_bytes / 1e6:g} MB limit (raise RAG_MAX_FILE_MB to index it)",
            "skipped",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    file_sha256 = hashlib.sha256(data).hexdigest()
    if known_as is not None and known_as == (file_sha256, extractor_id(fmt)):
        return Unchanged(source)
    got = extract(data, fmt)
    return Document(
        doc_id=doc_id,
        text=got.text,
        sha256=sha256_text(got.text),
        source=source,
        file_sha256=file_sha256,
        extractor=got.extractor,
        encoding=got.encoding,
        title=got.title,
        pages=got.pages,
    )


def known_as(known: Document | None) -> tuple[str | None, str | None] | None:
    return (known.file_sha256, known.extractor) if known is not None else None


def read_document(
    path: Path,
    doc_id: str,
    *,
    max_bytes: int | None = None,
    known: Document | None = None,
    markdown_rendered: bool = False,
) -> Document:
    """Read and extract one file; raise :class:`Unreadable` saying why it cannot be indexed.

    ``known`` is the previous index's document of the same id: when the file's bytes and the extractor
    are unchanged its text is reused instead of extracted again. ``markdown_rendered``: see :func:`read_file`.
    """
    got = read_file(path, doc_id, max_bytes=max_bytes, known_as=known_as(known), markdown_rendered=markdown_rendered)
    return replace(known, source=got.source) if isinstance(got, Unchanged) and known is not None else got  # type: ignore[return-value]


def read_files(jobs: Sequence[ReadJob], max_bytes: int | None, progress: bool) -> list[ReadResult]:
    """Read ``jobs`` one by one in this process (a progress bar for 20 or more PDF, HTML or Word files)."""
    from rag.progress import ProgressBar

    slow = sum(format_of(j.path.name, j.markdown_rendered) not in ("text", "markdown") for j in jobs)
    bar = ProgressBar(len(jobs), "Reading files") if progress and slow >= 20 else None
    out: list[ReadResult] = []
    for job in jobs:
        try:
            out.append(
                read_document(
                    job.path,
                    job.doc_id,
                    max_bytes=max_bytes,
                    known=job.known,
                    markdown_rendered=job.markdown_rendered,
                )
            )
        except Unreadable as exc:
            out.append(exc)
        if bar is not None:
            bar.advance(1)
    if bar is not None:
        bar.close()
    return out


def stamp(path: Path) -> SourceStamp | None:
    """The file's absolute path, size and modification time, or None if it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return SourceStamp(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _is_other_file(path: Path) -> bool:
    """A file named directly that rag does not read (folders are filtered by format while walking)."""
    return path.is_file() and format_of(path.name) is None


def scan_corpus(
    paths: Sequence[Path],
    *,
    max_bytes: int | None = None,
    known: Mapping[str, Document] | None = None,
    progress: bool = False,
    follow_external_symlinks: bool = False,
    read: ReadFiles = read_files,
    markdown_rendered: bool = False,
) -> CorpusScan:
    """Read every file rag reads under ``paths`` (see :func:`load_corpus` for the doc ids and errors).

    ``read`` reads the files (default: one by one, here; :mod:`rag.scale.ray_index` reads them on Ray).
    ``markdown_rendered`` (``Settings.markdown_rendered``): ``.md`` files are indexed as their rendered text
    rather than as ``Path.read_text`` reads them (see :func:`read_file`).
    """
    if not paths:
        raise CorpusError(
            f"No corpus path given. Pass a folder of documents ({_SHOWN_SUFFIXES}), e.g. `rag index seeds/`."
        )
    for root in paths:
        if not root.exists():
            raise CorpusError(f"Corpus path not found: {root}. Check the spelling, or pass an existing folder.")
    others = [p for p in paths if _is_other_file(p)]
    if others and len(others) == len(paths):
        shown = ", ".join(str(p) for p in others)
        raise CorpusError(
            f"{shown} {'is not a file' if len(others) == 1 else 'are not files'} of a format rag reads "
            f"({_SHOWN_SUFFIXES}); rename it to .txt if it is plain text (e.g. {others[0].with_suffix('.txt').name}), "
            "or pass a folder of documents."
        )
    todo: list[tuple[Path, str]] = []
    links: list[tuple[str, str]] = []
    other_files = 0
    for root in paths:
        if _is_other_file(root):
            log.warning("skipped %s: not a format rag reads (%s)", root, _SHOWN_SUFFIXES)
            continue
        prefix = f"{root.name}/" if len(paths) > 1 and root.is_dir() else ""
        for file, doc_id, problem in _files_under(root, follow_external_symlinks):
            if problem is not None:
                log.warning("skipped %s: %s", prefix + doc_id, problem)
                links.append((prefix + doc_id, problem))
            elif format_of(file.name) is None:
                other_files += 1
            else:
                todo.append((file, prefix + doc_id))
    scan = _read_all(todo, max_bytes, known or {}, progress, other_files, read, markdown_rendered)
    return replace(scan, skipped=(*links, *scan.skipped)) if links else scan


def _read_all(
    todo: Sequence[tuple[Path, str]],
    max_bytes: int | None,
    known: Mapping[str, Document],
    progress: bool,
    other_files: int,
    read: ReadFiles,
    markdown_rendered: bool = False,
) -> CorpusScan:
    jobs: list[ReadJob] = []
    seen: set[str] = set()
    for file, doc_id in todo:
        if doc_id not in seen:
            seen.add(doc_id)
            jobs.append(ReadJob(file, doc_id, known.get(doc_id), markdown_rendered))
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for job, got in zip(jobs, read(jobs, max_bytes, progress), strict=True):
        if isinstance(got, Unreadable):
            (skipped if got.kind == "skipped" else failed).append((job.doc_id, got.reason))
            log.warning("%s %s: %s", "skipped" if got.kind == "skipped" else "could not index", job.doc_id, got.reason)
        else:
            docs.append(got)
    return CorpusScan(tuple(docs), tuple(skipped), tuple(failed), other_files)


def load_corpus(paths: Sequence[Path], *, max_bytes: int | None = None) -> list[Document]:
    """Load every document under ``paths``.

    With one directory the doc ids are relative to it; with several paths each doc id is prefixed with
    that path's name so ids stay unique. A file named directly must be of a format rag reads too: when
    every path is such a file of another format it is an error, otherwise those files are skipped with a
    warning. A corpus with no text at all is an error.
    """
    scan = scan_corpus(paths, max_bytes=max_bytes)
    check_has_text(scan, paths)
    return list(scan.documents)


def check_has_text(scan: CorpusScan, paths: Sequence[Path]) -> None:
    """Raise :class:`CorpusError` when nothing in the scan has text to index."""
    if not any(d.text.strip() for d in scan.documents):
        shown = ", ".join(str(p) for p in paths)
        problems = f" ({scan.summary()})" if scan.skipped or scan.failed else ""
        raise CorpusError(
            f"The corpus at {shown} has no readable text{problems}: it needs at least one document with text "
            f"({_SHOWN_SUFFIXES})."
        )
