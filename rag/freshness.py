"""Has a document changed on disk since it was indexed?

Answers quote the text as it was indexed, so their citations stay true to ``GET /documents/{doc_id}``; but
the contract promises offsets into the file itself. When the file has been edited or removed since, `rag
ask` says so and how to re-index. The check is cheap: one ``stat`` per document, and a file is read and
hashed only when its size or modification time differs from the manifest's record (so a file that was only
touched is not reported).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from rag.config import Settings
from rag.corpus import sha256_text
from rag.extract.plain import universal_newlines
from rag.manifest import DocumentInfo
from rag.safe_open import read_checked, sha256_checked
from rag.store import IndexData, update_command


class Staleness(NamedTuple):
    changed: tuple[str, ...]  # doc ids whose file now holds other text
    missing: tuple[str, ...]  # doc ids whose file is gone

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing)


def _same_content(path: Path, info: DocumentInfo) -> bool:
    """Does the file still hold what was indexed? Its bytes' hash when recorded, else its UTF-8 text's."""
    try:
        if info.file_sha256 is not None:  # opened, then checked: a FIFO or a device put there is "changed"
            return sha256_checked(path, follow=True) == info.file_sha256
        text = universal_newlines(read_checked(path, follow=True)[0].decode("utf-8"))  # as Path.read_text reads it
        return sha256_text(text) == info.sha256
    except (OSError, UnicodeDecodeError):
        return False


def stale_documents(documents: Mapping[str, DocumentInfo]) -> Staleness:
    """The indexed documents whose source file has changed or gone since the index was built.

    Documents without a recorded source (older indexes) are not checked. When none of the recorded files
    exists, the index was most likely moved to another machine or folder: nothing is reported then.
    """
    changed: list[str] = []
    missing: list[str] = []
    checked = 0
    for doc_id, info in documents.items():
        if info.source is None:
            continue
        checked += 1
        path = Path(info.source)
        try:
            st = path.stat()
        except OSError:
            missing.append(doc_id)
            continue
        if st.st_size == info.size and st.st_mtime_ns == info.mtime_ns:
            continue
        if not _same_content(path, info):
            changed.append(doc_id)
    if missing and len(missing) == checked:
        return Staleness((), ())
    return Staleness(tuple(changed), tuple(missing))


def describe(stale: Staleness, reindex: str, shown: int = 3) -> str:
    """One line for the user: what changed, and the command (``reindex``, quoted) that updates the index."""

    def files(ids: tuple[str, ...], verb: str, verb_plural: str) -> str:
        if len(ids) == 1:
            return f"{ids[0]} {verb}"
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        return f"{len(ids)} files {verb_plural} ({', '.join(ids[:shown])}{more})"

    parts = []
    if stale.changed:
        parts.append(files(stale.changed, "changed", "changed"))
    if stale.missing:
        parts.append(files(stale.missing, "was removed", "were removed"))
    return (
        f"{' and '.join(parts)} since the index was built: answers quote the indexed text, whose offsets may "
        f"not match the files now. Run {reindex} to update the index."
    )


def staleness_warning(index: IndexData | None, settings: Settings, index_dir: Path) -> str | None:
    """The warning line for a loaded index whose documents changed on disk since, or None (also for none)."""
    if index is None:
        return None
    stale = stale_documents(index.manifest.documents)
    return describe(stale, update_command(index.manifest, settings, index_dir)) if stale else None
