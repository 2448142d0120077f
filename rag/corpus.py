"""Reading a corpus: the files under one or more paths, in every format :mod:`rag.extract` reads.

A file that cannot be indexed (damaged, empty, scanned, encrypted, too large, unreadable) costs one
warning line naming it and the reason; the scan goes on, and its summary counts what was indexed,
skipped and failed. A file whose bytes and extractor are those of the previous index is not extracted
again: its text is taken from that index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rag.errors import CorpusError
from rag.extract import FORMATS, Unreadable, extract, extractor_id, format_of
from rag.safe_open import FileId, NotSafe, TooLarge, kind_of, read_checked
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


def _walk(root: Path) -> tuple[list[Path], list[tuple[Path, OSError]]]:
    """Every entry under the folder ``root`` (not under hidden folders, nor through symlinks to folders), and
    the folders that could not be listed with why."""
    found: list[Path] = []
    unreadable: list[tuple[Path, OSError]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            unreadable.append((folder, exc))
            continue
        for entry in entries:
            path = folder / entry.name
            found.append(path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir and not entry.name.startswith("."):
                stack.append(path)
    return found, unreadable


def _files_under(root: Path, follow_external: bool = False) -> Iterable[tuple[Path, str, str | None, FileId | None]]:
    """Yield (file, doc_id, why it is skipped or None, the file the scan saw) for every file under ``root``
    (hidden ones excluded).

    doc_id is relative to ``root``, with '/'. A symlink whose target lies outside ``root`` is skipped unless
    ``follow_external`` (anyone who can drop a link into a watched folder could otherwise publish any file
    the service can read); broken links, symlink loops, links to folders (never walked) and links to hidden
    files are skipped; so are FIFOs, sockets, devices and folders that cannot be read, each with why. The
    :class:`FileId` is what :func:`read_file` checks the opened file against (so a file swapped after the scan
    is not read).
    """
    try:
        root_st = root.lstat() if not root.is_dir() else None
    except OSError:
        root_st = None
    if root_st is not None:
        if root.is_file():  # a file named directly: followed if it is a link (whoever named it chose it)
            st = root.stat()
            yield root, root.name, None, FileId(st.st_dev, st.st_ino, True)
        else:
            yield root, root.name, f"{kind_of(root.stat().st_mode)}, not a regular file", None
        return
    real_root = root.resolve()
    found, unreadable = _walk(root)
    for folder, exc in unreadable:
        if folder != root:
            rel = folder.relative_to(root).as_posix()
            yield folder, rel, f"a folder that cannot be read ({exc.strerror or exc}); its files are not indexed", None
    if not found and unreadable and unreadable[0][0] == root:
        exc = unreadable[0][1]
        raise CorpusError(f"Cannot read the corpus folder {root} ({exc.strerror or exc}). Check its permissions.")
    for path in sorted(found):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders (.git, .DS_Store, ...)
        try:
            lst = path.lstat()
        except OSError:
            continue  # gone since it was listed
        if stat.S_ISDIR(lst.st_mode):
            continue  # walked
        if stat.S_ISLNK(lst.st_mode):
            try:
                target = path.resolve(strict=True)
                st = target.stat()
            except (OSError, RuntimeError):  # a missing target, or a loop (RuntimeError before Python 3.13)
                yield path, rel.as_posix(), "a broken symlink or a symlink loop", None
                continue
            if stat.S_ISDIR(st.st_mode):
                yield (
                    path,
                    rel.as_posix(),
                    "a symlink to a folder (folders reached through a symlink are not read)",
                    None,
                )
                continue
            inside = target.is_relative_to(real_root)
            if not follow_external and not inside:
                yield (
                    path,
                    rel.as_posix(),
                    (
                        "a symlink to a file outside the corpus folder; set RAG_FOLLOW_EXTERNAL_SYMLINKS=true to index it"
                    ),
                    None,
                )
                continue
            if inside and any(part.startswith(".") for part in target.relative_to(real_root).parts):
                yield path, rel.as_posix(), "a symlink to a hidden file (hidden files are left out)", None
                continue
            if not stat.S_ISREG(st.st_mode):
                yield path, rel.as_posix(), f"a symlink to {kind_of(st.st_mode)}, not a regular file", None
                continue
            yield path, rel.as_posix(), None, FileId(st.st_dev, st.st_ino, True)
        elif stat.S_ISREG(lst.st_mode):
            yield path, rel.as_posix(), None, FileId(lst.st_dev, lst.st_ino, False)
        else:
            yield path, rel.as_posix(), f"{kind_of(lst.st_mode)}, not a regular file", None


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
    file_id: FileId | None = None  # the file the scan saw there: the one opened must be it


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
    expect: FileId | None = None,
) -> Document | Unchanged:
    """Read and extract one file, or say it is :class:`Unchanged` when its byte sha256 and extractor are
    ``known_as``; raise :class:`Unreadable` saying why it cannot be indexed.

    ``markdown_rendered``: a ``.md`` file is indexed as its rendered text (format ``markdown``), not as read
    (``text``); the two have different extractor ids, so switching re-extracts the file.

    ``expect``: the file the scan saw at ``path``. The file is opened first (a final symlink not followed
    unless the scan saw one, non-blocking), then checked: a regular file, and with ``expect`` that very file
    (device and inode), so one swapped in after the scan (a symlink out of the corpus, a FIFO) is not read."""
    fmt = format_of(path.name, markdown_rendered)
    if fmt is None:
        raise Unreadable(f"not a format rag reads ({_SHOWN_SUFFIXES})", "skipped")
    data, source = _read_bytes(path, max_bytes, expect)
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


def _read_bytes(path: Path, max_bytes: int | None, expect: FileId | None) -> tuple[bytes, SourceStamp]:
    """The file's bytes and stamp, opened then checked (see :func:`read_file`); :class:`Unreadable` if not."""
    follow = expect.via_link if expect is not None else path.is_symlink()
    try:
        data, st = read_checked(path, follow=follow, expect=expect, limit=max_bytes)
    except TooLarge as exc:
        raise Unreadable(
            f"{exc.size / 1e6:.0f} MB, over the {exc.limit / 1e6:g} MB limit (raise RAG_MAX_FILE_MB to index it)",
            "skipped",
        ) from None
    except NotSafe as exc:
        swapped = expect is not None and not expect.via_link and exc.reason.startswith("a symlink")
        raise Unreadable(
            "it became a symlink after the scan (not followed)" if swapped else exc.reason, "skipped"
        ) from None
    except OSError as exc:
        raise Unreadable(f"cannot read it ({exc.strerror or exc})") from None
    return data, SourceStamp(str(path.resolve()), st.st_size, st.st_mtime_ns)


def known_as(known: Document | None) -> tuple[str | None, str | None] | None:
    return (known.file_sha256, known.extractor) if known is not None else None


def read_document(
    path: Path,
    doc_id: str,
    *,
    max_bytes: int | None = None,
    known: Document | None = None,
    markdown_rendered: bool = False,
    expect: FileId | None = None,
) -> Document:
    """Read and extract one file; raise :class:`Unreadable` saying why it cannot be indexed.

    ``known`` is the previous index's document of the same id: when the file's bytes and the extractor
    are unchanged its text is reused instead of extracted again. ``markdown_rendered``: see :func:`read_file`.
    """
    got = read_file(
        path,
        doc_id,
        max_bytes=max_bytes,
        known_as=known_as(known),
        markdown_rendered=markdown_rendered,
        expect=expect,
    )
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
                    expect=job.file_id,
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
    todo: list[tuple[Path, str, FileId | None]] = []
    links: list[tuple[str, str]] = []
    other_files = 0
    for root in paths:
        if _is_other_file(root):
            log.warning("skipped %s: not a format rag reads (%s)", root, _SHOWN_SUFFIXES)
            continue
        prefix = f"{root.name}/" if len(paths) > 1 and root.is_dir() else ""
        for file, doc_id, problem, file_id in _files_under(root, follow_external_symlinks):
            if problem is not None:
                log.warning("skipped %s: %s", prefix + doc_id, problem)
                links.append((prefix + doc_id, problem))
            elif format_of(file.name) is None:
                other_files += 1
            else:
                todo.append((file, prefix + doc_id, file_id))
    scan = _read_all(todo, max_bytes, known or {}, progress, other_files, read, markdown_rendered)
    return replace(scan, skipped=(*links, *scan.skipped)) if links else scan


def _read_all(
    todo: Sequence[tuple[Path, str, FileId | None]],
    max_bytes: int | None,
    known: Mapping[str, Document],
    progress: bool,
    other_files: int,
    read: ReadFiles,
    markdown_rendered: bool = False,
) -> CorpusScan:
    jobs: list[ReadJob] = []
    seen: set[str] = set()
    for file, doc_id, file_id in todo:
        if doc_id not in seen:
            seen.add(doc_id)
            jobs.append(ReadJob(file, doc_id, known.get(doc_id), markdown_rendered, file_id))
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
