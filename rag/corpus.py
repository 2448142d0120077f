"""Reading a corpus: ``.txt`` and ``.md`` files under one or more paths."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.errors import CorpusError
from rag.types import Document, SourceStamp

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md")
# Byte order marks of encodings that are not UTF-8 (UTF-32 first: its little-endian BOM starts like UTF-16's).
_FOREIGN_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _files_under(root: Path) -> Iterable[tuple[Path, str]]:
    """Yield (file, doc_id) for every indexable file; doc_id is relative to ``root`` with '/'."""
    if root.is_file():
        yield root, root.name
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders (.git, .DS_Store, ...)
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            yield path, rel.as_posix()


def read_document(path: Path, doc_id: str) -> Document | None:
    """Read one file as UTF-8 text; return None (after one warning line) if it is not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("skipped %s: cannot read it (%s)", doc_id, exc.strerror or exc)
        return None
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            log.warning("skipped %s: not UTF-8 text (looks like %s; convert it to UTF-8)", doc_id, encoding)
            return None
    if b"\x00" in data:
        log.warning("skipped %s: binary file, not text", doc_id)
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.warning("skipped %s: not UTF-8 text (byte %d); convert it to UTF-8 to index it", doc_id, exc.start)
        return None
    # Read exactly as the citation contract specifies (universal newlines), so offsets match.
    text = path.read_text(encoding="utf-8")
    return Document(doc_id=doc_id, text=text, sha256=sha256_text(text), source=stamp(path))


def stamp(path: Path) -> SourceStamp | None:
    """The file's absolute path, size and modification time, or None if it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return SourceStamp(str(path.resolve()), st.st_size, st.st_mtime_ns)


def _is_other_file(path: Path) -> bool:
    """A file named directly that is not ``.txt``/``.md`` (folders are filtered by suffix while walking)."""
    return path.is_file() and path.suffix.lower() not in SUFFIXES


def load_corpus(paths: Sequence[Path]) -> list[Document]:
    """Load every ``.txt``/``.md`` file under ``paths``.

    With one directory the doc ids are relative to it; with several paths each doc id is prefixed with
    that path's name so ids stay unique. A file named directly must be ``.txt``/``.md`` too: when every
    path is such a file with another suffix it is an error, otherwise those files are skipped with a warning.
    """
    if not paths:
        raise CorpusError("No corpus path given. Pass a folder of .txt/.md files, e.g. `rag index seeds/`.")
    for root in paths:
        if not root.exists():
            raise CorpusError(f"Corpus path not found: {root}. Check the spelling, or pass an existing folder.")
    others = [p for p in paths if _is_other_file(p)]
    if others and len(others) == len(paths):
        shown = ", ".join(str(p) for p in others)
        raise CorpusError(
            f"{shown} {'is not a .txt or .md file' if len(others) == 1 else 'are not .txt or .md files'}; "
            f"rename it to .txt or .md if it is plain UTF-8 text (e.g. {others[0].with_suffix('.txt').name}), "
            "or pass a folder of .txt/.md files."
        )
    docs: list[Document] = []
    seen: set[str] = set()
    for root in paths:
        if _is_other_file(root):
            log.warning("skipped %s: not a .txt or .md file; rename it to .txt or .md to index it", root)
            continue
        prefix = f"{root.name}/" if len(paths) > 1 and root.is_dir() else ""
        for file, doc_id in _files_under(root):
            doc_id = prefix + doc_id
            if doc_id in seen:
                continue
            doc = read_document(file, doc_id)
            if doc is not None:
                seen.add(doc_id)
                docs.append(doc)
    if not any(d.text.strip() for d in docs):
        shown = ", ".join(str(p) for p in paths)
        raise CorpusError(
            f"The corpus at {shown} has no readable text: it needs at least one non-empty UTF-8 .txt or .md file."
        )
    return docs
