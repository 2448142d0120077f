"""The index folder on disk: checks before a build, and the one-writer lock.

What goes inside, and how a new build replaces the old one whole, is :mod:`rag.generations`. Every
filesystem failure becomes an :class:`IndexWriteError` that names the path and the step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from rag.errors import IndexBusy, IndexWriteError, RagError

log = logging.getLogger(__name__)

WRITE_FIX = "Choose another --index-dir or RAG_INDEX_DIR, check permissions and free space."


def _is_non_folder(path: Path) -> bool:
    """True if something other than a folder exists at ``path`` (so nothing can be created under it)."""
    try:
        return path.exists() and not path.is_dir()
    except OSError:
        return False  # cannot tell; creating the folder will report the real problem


def check_no_file_in_the_way(index_dir: Path) -> None:
    """Raise :class:`IndexWriteError` if ``index_dir`` or one of its parents is a file, not a folder."""
    for path in (index_dir, *index_dir.absolute().parents):
        if _is_non_folder(path):
            where = "Index path" if path == index_dir else f"Cannot create the index folder {index_dir}:"
            raise IndexWriteError(
                f"{where} {path} is a file, not a folder. Choose another --index-dir or RAG_INDEX_DIR."
            )


def check_replaceable(index_dir: Path, *, markers: Collection[str], allowed: Callable[[str], bool]) -> None:
    """Before any work: a folder can be created at ``index_dir`` and would replace nothing but an index.

    An existing folder is ours when it holds one of ``markers`` (the pointer, a legacy manifest) or only
    names that ``allowed`` accepts.
    """
    check_no_file_in_the_way(index_dir)
    try:
        index_dir.exists()
    except OSError as exc:  # e.g. a parent folder that may not be searched (Python < 3.12 raises here)
        raise IndexWriteError(
            f"Cannot reach the index folder {index_dir} ({exc.strerror or exc}). {WRITE_FIX}"
        ) from exc
    if not index_dir.is_dir() or any((index_dir / marker).exists() for marker in markers):
        return
    try:
        names = [p.name for p in index_dir.iterdir()]
    except OSError as exc:
        raise IndexWriteError(f"Cannot list the index folder {index_dir} ({exc.strerror or exc}). {WRITE_FIX}") from exc
    foreign = [name for name in names if not allowed(name)]
    if foreign:
        raise RagError(
            f"{index_dir} holds files that are not part of an index ({', '.join(sorted(foreign)[:3])}); "
            "refusing to replace it. Choose an empty or new folder with --index-dir."
        )


def lock_path(index_dir: Path) -> Path:
    """The lock file of ``index_dir``: beside the folder it resolves to, so every path to one index (a symlink
    to it, ``./index``, an absolute path) takes the same lock."""
    index_dir = index_dir.absolute().resolve()
    return index_dir.parent / f".{index_dir.name}.lock"


@contextlib.contextmanager
def writer_lock(index_dir: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the one-writer lock of ``index_dir`` (an advisory ``flock``, released by the OS when the process
    ends, so a killed writer leaves no stale lock). Another holder makes this wait, after telling
    ``on_wait`` who holds it, or raise :class:`IndexBusy` at once when not ``wait``.

    Under the lock, what a killed writer left behind is cleaned up first (:func:`recover`).
    """
    from rag.generations import repair

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        yield
        return
    path = lock_path(index_dir)
    check_no_file_in_the_way(index_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise IndexWriteError(f"Cannot create the lock file {path} ({exc.strerror or exc}). {WRITE_FIX}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise IndexBusy(
                    f"Another rag process ({holder}) is writing the index {index_dir}. Wait for it to finish, "
                    "or run the command again without --no-wait to wait for it."
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for another rag process ({holder}) to finish writing the index {index_dir} ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        recover(index_dir)
        repair(index_dir)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def recover(index_dir: Path) -> None:
    """Clean up after a writer that was killed (call only under the writer lock).

    Versions before :mod:`rag.generations` replaced the whole folder with two renames: a previous index such
    a writer moved aside but did not replace (killed between the renames) is moved back, and the temporary
    folders of its unfinished builds are removed.
    """
    index_dir = index_dir.absolute()
    parent = index_dir.parent
    if not parent.is_dir():
        return
    index_dir = index_dir.resolve()
    parent = index_dir.parent
    leftovers = sorted(parent.glob(f".{index_dir.name}.old-*")) + sorted(parent.glob(f".{index_dir.name}.tmp-*"))
    for old in leftovers:
        if old.name.startswith(f".{index_dir.name}.old-") and (old / "index").is_dir() and not index_dir.exists():
            os.replace(old / "index", index_dir)
            log.warning("restored the previous index %s, left aside by an interrupted build", index_dir)
        shutil.rmtree(old, ignore_errors=True)


def restorable(index_dir: Path) -> bool:
    """Is there a previous index that a killed writer left aside (see :func:`recover`)?"""
    index_dir = index_dir.absolute().resolve()
    try:
        return any((old / "index").is_dir() for old in index_dir.parent.glob(f".{index_dir.name}.old-*"))
    except OSError:
        return False


def wait_for_writer(index_dir: Path, on_wait: Callable[[str], None] | None = None) -> None:
    """Wait until no process is writing ``index_dir`` (a reader's wait: it takes nothing and writes nothing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locking
        return
    try:  # non-blocking: a FIFO put in the lock file's place must not make a reader wait for a writer
        fd = os.open(lock_path(index_dir), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # no lock file: nobody ever wrote this index here
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # not a lock file rag wrote: no writer holds it
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for another rag process ({_holder(fd)}) to finish writing the index {index_dir} ...")
            fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
