"""Generations of an index folder: each build writes a new, never-changed folder, and one pointer names it.

Layout of an index folder (the folder itself is never renamed or replaced, so a symlinked one stays a link):

- ``CURRENT``: one line, the name of the current generation; replaced whole by one rename;
- ``gen-NNNNNN-XXXXXXXX/``: one complete index (``manifest.json`` and the files it lists), written once
  and never changed after ``CURRENT`` names it;
- anything the user keeps there (``README.md``, ``.gitkeep``) is left alone.

An index written before generations has its files at the top of the folder (the *legacy* layout): it is
still read, and the next ``rag index`` moves it into a generation (one warning line).

Readers resolve ``CURRENT`` once and read every file of that one generation while holding a shared
``flock`` on its ``manifest.json`` (:func:`reading`), so they never see a half-written or half-swapped
index, nor files of two builds. The writer (under the writer lock) writes a new generation, renames a new
``CURRENT`` into place, and then removes every other generation that no reader holds (an exclusive lock
that does not wait); one still being read is removed by a later build.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import IndexCorrupt, IndexWriteError
from rag.safe_open import NotSafe, TooLarge, open_checked, read_checked, read_fd

log = logging.getLogger(__name__)

POINTER = "CURRENT"
MANIFEST = "manifest.json"
PREFIX = "gen-"
_NAME = re.compile(r"gen-(\d{6,})-[A-Za-z0-9_]+")
MAX_POINTER_BYTES = 4096  # CURRENT holds one generation name
MAX_MANIFEST_BYTES = 1 << 30  # ~3 million documents; beyond it a manifest is damage, not an index
WRITE_FIX = "Choose another --index-dir or RAG_INDEX_DIR, check permissions and free space."


class GenerationGone(Exception):
    """The generation being opened was removed by a writer (it is no longer current): resolve again."""


@dataclass(frozen=True)
class Generation:
    """One complete index inside ``index_dir``: the folder ``name``, or the folder itself (legacy layout)."""

    index_dir: Path
    name: str | None  # None: the legacy layout, files at the top of index_dir
    ident: str  # what tells two generations apart (the name; for the legacy layout, its manifest's stat)

    @property
    def path(self) -> Path:
        return self.index_dir / self.name if self.name else self.index_dir


def is_generation_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _read_pointer(index_dir: Path) -> str | None:
    try:  # opened, then checked: a FIFO or a link to /dev/zero put there can neither block nor fill memory
        text = read_checked(index_dir / POINTER, limit=MAX_POINTER_BYTES)[0].decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except NotSafe as exc:
        raise IndexCorrupt(
            f"The index pointer {index_dir / POINTER} is damaged ({exc.reason}). Run `rag index` "
            f"with --index-dir {index_dir} to repair it."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
        raise IndexCorrupt(f"The index in {index_dir} cannot be read ({why}). Check its permissions.") from None
    name = text.strip()
    if not is_generation_name(name):
        raise IndexCorrupt(
            f"The index pointer {index_dir / POINTER} is damaged (it names {name[:40]!r}). Run `rag index` "
            f"with --index-dir {index_dir} to repair it."
        )
    return name


def _legacy(index_dir: Path) -> Generation | None:
    try:
        st = os.stat(index_dir / MANIFEST)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a parent folder that may not be searched
        raise IndexCorrupt(
            f"The index in {index_dir} cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None
    return Generation(index_dir, None, f"legacy:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")


def resolve(index_dir: Path) -> Generation | None:
    """The generation the index folder names now, or None when it holds no index."""
    name = _read_pointer(index_dir)
    if name is None:
        legacy = _legacy(index_dir)
        if legacy is not None:
            return legacy
        name = _read_pointer(index_dir)  # a writer moving a legacy index into a generation just now
        if name is None:
            return None
    return Generation(index_dir, name, name)


def stamp(index_dir: Path) -> str | None:
    """What changes whenever a new index is published in ``index_dir`` (None: no index, or unreadable)."""
    try:
        gen = resolve(index_dir)
    except IndexCorrupt:
        return None
    return gen.ident if gen is not None else None


@contextlib.contextmanager
def reading(gen: Generation) -> Iterator[bytes]:
    """Hold ``gen`` against removal while its files are read; yields the bytes of its manifest.

    Raises :class:`GenerationGone` when a writer removed it first (resolve the folder again then), and
    :class:`FileNotFoundError` never: a missing manifest of a current generation is the caller's damage.
    """
    path = gen.path / MANIFEST
    try:  # opened, then checked: a regular file (no FIFO to block on, no link to a device), of bounded size
        fd, st = open_checked(path)
    except FileNotFoundError:
        raise GenerationGone(gen.ident) from None
    except NotSafe as exc:
        raise IndexCorrupt(
            f"The index manifest {path} is damaged ({exc.reason}). Run `rag index` with --index-dir "
            f"{gen.index_dir} to repair it."
        ) from None
    except OSError as exc:
        raise IndexCorrupt(
            f"The index manifest {path} cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None
    try:
        _flock(fd, shared=True)
        if os.fstat(fd).st_nlink == 0:  # removed while we waited for the lock
            raise GenerationGone(gen.ident)
        try:
            raw = read_fd(fd, MAX_MANIFEST_BYTES)
        except TooLarge as exc:
            raise IndexCorrupt(
                f"The index manifest {path} is damaged (over {exc.limit // 2**20} MiB). Run `rag index` with "
                f"--index-dir {gen.index_dir} to repair it."
            ) from None
        yield raw
    finally:
        os.close(fd)  # releases the lock


def _flock(fd: int, *, shared: bool, wait: bool = True) -> bool:
    """Take a flock on ``fd``; False when ``wait`` is off and another holds a conflicting one."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        return True
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        return False
    return True


# --------------------------------------------------------------------------------------------- writing
def _number(name: str) -> int:
    m = _NAME.fullmatch(name)
    return int(m.group(1)) if m else -1


def generation_names(index_dir: Path) -> list[str]:
    """The generation folders in ``index_dir``, oldest first."""
    try:
        names = [p.name for p in index_dir.iterdir() if is_generation_name(p.name)]
    except OSError:
        return []
    return sorted(names, key=lambda n: (_number(n), n))


def write_generation(
    index_dir: Path,
    fill: Callable[[Path], None],
    *,
    legacy_files: Collection[str] = (),
    before_publish: Callable[[], None] | None = None,
) -> Generation:
    """Write a new generation with ``fill`` and publish it (call under the writer lock).

    The previous generation stays current until the pointer's rename, so a failure (disk full, a killed
    process) leaves it as it was, and the partial folder is removed. After publishing, generations no
    reader holds are removed, and a legacy index's top-level files (``legacy_files``) too.
    ``before_publish`` is a test hook: it runs between the folder being complete and the rename.
    """
    shown = index_dir
    index_dir = Path(index_dir)
    step = f"creating the folder {index_dir}"
    gen_dir: Path | None = None
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        existing = generation_names(index_dir)
        number = _number(existing[-1]) + 1 if existing else 1
        step = f"creating a generation folder in {index_dir}"
        gen_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{number:06d}-", dir=index_dir))
        os.chmod(gen_dir, 0o755)  # mkdtemp makes it private; an index is an ordinary folder
        step = f"writing the new index files in {gen_dir}"
        fill(gen_dir)
        if before_publish is not None:
            before_publish()
        name = gen_dir.name
        step = f"publishing {name} as {index_dir / POINTER}"
        publish(index_dir, name)
        gen_dir = None
    except BaseException as exc:
        if gen_dir is not None:
            shutil.rmtree(gen_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc) or exc.__class__.__name__
            if exc.filename:
                why += f": {exc.filename}"
            raise IndexWriteError(
                f"Cannot write the index {shown}: {step} failed ({why}). The previous index, if any, is "
                f"unchanged. {WRITE_FIX}"
            ) from exc
        raise
    remove_unused(index_dir, name, legacy_files)
    return Generation(index_dir, name, name)


def publish(index_dir: Path, name: str) -> None:
    """Make ``name`` the current generation: a new pointer file, flushed, renamed over the old one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{POINTER}.tmp-", dir=index_dir)
    try:
        os.write(fd, f"{name}\n".encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, 0o644)
        os.replace(tmp, index_dir / POINTER)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        dir_fd = os.open(index_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _remove_if_unread(folder: Path, manifest: Path, remove: Callable[[], None]) -> bool:
    """Run ``remove`` unless a reader holds ``manifest`` (no manifest: nobody can be reading it)."""
    try:
        fd, _ = open_checked(manifest)
    except (FileNotFoundError, NotSafe):  # none, or not a regular file (a FIFO): no reader can hold it
        remove()
        return True
    except OSError:
        return False
    try:
        if not _flock(fd, shared=False, wait=False):
            log.debug("kept %s: a reader is loading it (a later build removes it)", folder)
            return False
        remove()
        return True
    finally:
        os.close(fd)


def _listed(manifest: Path) -> list[str]:
    """The file names a (legacy) manifest lists, when it can be read: plain names only."""
    try:
        files = json.loads(read_checked(manifest, limit=MAX_MANIFEST_BYTES)[0].decode("utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in files if isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")]


def remove_unused(index_dir: Path, current: str, legacy_files: Collection[str] = ()) -> None:
    """Remove every generation but ``current`` that no reader holds, stray pointer files, and the files of a
    legacy index (call under the writer lock, after ``current`` was published)."""
    for name in generation_names(index_dir):
        if name != current:
            folder = index_dir / name
            _remove_if_unread(folder, folder / MANIFEST, lambda f=folder: shutil.rmtree(f, ignore_errors=True))
    for stray in index_dir.glob(f".{POINTER}.tmp-*"):
        with contextlib.suppress(OSError):
            stray.unlink()
    if (index_dir / MANIFEST).is_file():

        def remove_legacy() -> None:
            for name in {*legacy_files, *_listed(index_dir / MANIFEST), MANIFEST}:
                with contextlib.suppress(FileNotFoundError):
                    (index_dir / name).unlink()

        if _remove_if_unread(index_dir, index_dir / MANIFEST, remove_legacy):
            log.warning(
                "moved the index in %s into the generation layout (%s/%s, named by %s); rag versions before "
                "this one cannot read it",
                index_dir,
                index_dir,
                current,
                POINTER,
            )


def repair(index_dir: Path) -> None:
    """Under the writer lock: a pointer to a missing generation is pointed at the newest complete one (with a
    warning), and what killed builds left (unpublished or unremoved generations) is removed."""
    try:
        name = _read_pointer(index_dir)
    except IndexCorrupt:
        name = ""  # a damaged pointer: repaired like a missing generation
    if name is None:  # no generation was ever published (or a legacy index): unpublished ones are leftovers
        for leftover in generation_names(index_dir):
            shutil.rmtree(index_dir / leftover, ignore_errors=True)
        return
    if not name or not (index_dir / name / MANIFEST).is_file():
        complete = [n for n in generation_names(index_dir) if (index_dir / n / MANIFEST).is_file()]
        if not complete:
            log.warning(
                "the index pointer %s names %s, which is missing, and no complete generation is left: "
                "the index must be built again",
                index_dir / POINTER,
                name or "nothing valid",
            )
            with contextlib.suppress(OSError):
                (index_dir / POINTER).unlink()
            return
        log.warning(
            "the index pointer %s named %s, which is missing; it now names %s, the newest complete generation",
            index_dir / POINTER,
            name or "nothing valid",
            complete[-1],
        )
        publish(index_dir, complete[-1])
        name = complete[-1]
    remove_unused(index_dir, name)


def files_of(index_dir: Path) -> Path:
    """The folder holding the current index's files (its generation; the folder itself for the legacy layout).
    For tools and tests that look inside; loading goes through :func:`resolve` and :func:`reading`."""
    gen = resolve(index_dir)
    if gen is None:
        raise FileNotFoundError(f"no index in {index_dir}")
    return gen.path
