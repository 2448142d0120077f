"""Reading a corpus: ``.txt`` and ``.md`` files under one or more paths."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from rag.errors import CorpusError
from rag.types import Document

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md")


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
    return Document(doc_id=doc_id, text=text, sha256=sha256_text(text))


def load_corpus(paths: Sequence[Path]) -> list[Document]:
    """Load every ``.txt``/``.md`` file under ``paths``.

    With one directory the doc ids are relative to it; with several paths each doc id is prefixed with
    that path's name so ids stay unique.
    """
    if not paths:
        raise CorpusError("No corpus path given. Pass a folder of .txt/.md files, e.g. `rag index seeds/`.")
    docs: list[Document] = []
    seen: set[str] = set()
    for root in paths:
        if not root.exists():
            raise CorpusError(f"Corpus path not found: {root}. Check the spelling, or pass an existing folder.")
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
