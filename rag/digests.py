"""sha256 digests of files, remembered by (size, mtime_ns, inode) so that unchanged files are not read again.

Used for the ONNX export cache's fingerprints and for the learned reader's checksums at start-up (70 MB
of model files): like git's index, a file whose stat stamp is unchanged is trusted to hold the content
it was hashed with; a changed file gets a new stamp and is hashed again. The cache is one JSON file
written atomically; a cache that cannot be read or written only costs re-hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StatCache:
    """Digests by file stat stamp, kept in the JSON file ``file`` (None: in memory only)."""

    def __init__(self, file: Path | None) -> None:
        self._file = file
        self._data: dict[str, list[Any]] = {}
        self._dirty = False
        if file is not None:
            self._data = self._read(file)

    @staticmethod
    def _read(file: Path) -> dict[str, list[Any]]:
        """The entries saved in ``file``; none when it is missing or damaged (a damaged cache only costs time)."""
        if not file.is_file():
            return {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                return loaded
        return {}

    @staticmethod
    def _stamp(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def digest(self, path: Path, label: str | None = None, compute: Callable[[], str] | None = None) -> str:
        """The digest of ``path`` (``compute()``, by default the file's sha256), cached under ``label``."""
        path = path.resolve()
        key = f"{path}#{label}" if label else str(path)
        cached = self._data.get(key)
        if isinstance(cached, list) and len(cached) == 4 and cached[:3] == self._stamp(path.stat()):
            return str(cached[3])
        value = compute() if compute is not None else sha256_file(path)
        self.remember(path, value, label)
        return value

    def sha256(self, path: Path) -> str:
        return self.digest(path)

    def remember(self, path: Path, digest: str, label: str | None = None) -> None:
        path = path.resolve()
        self._data[f"{path}#{label}" if label else str(path)] = [*self._stamp(path.stat()), digest]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._file is None:
            return
        with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing next time
            self._file.parent.mkdir(parents=True, exist_ok=True)
            merged = self._read(self._file)  # another process or thread may have saved entries since
            merged.update(self._data)
            live = {k: v for k, v in merged.items() if Path(k.split("#", 1)[0]).exists()}
            atomic_write_text(self._file, json.dumps(live, sort_keys=True))
            self._dirty = False
