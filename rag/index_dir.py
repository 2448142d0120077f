"""The index folder on disk: checks before a build, and replacing it whole or not at all.

Generic over what goes inside: the store fills a fresh temporary folder beside the target, and
:func:`replace_dir` swaps it in with renames, so an interrupted or failed build leaves the previous index
as it was. Every filesystem failure becomes an :class:`IndexWriteError` that names the path and the step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
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


def check_replaceable(index_dir: Path, *, marker: str, allowed: Collection[str]) -> None:
    """Before any work: a folder can be created at ``index_dir`` and would replace nothing but an index.

    An existing folder is ours when it holds ``marker`` (the manifest) or only names in ``allowed``.
    """
    check_no_file_in_the_way(index_dir)
    try:
        index_dir.exists()
    except OSError as exc:  # e.g. a parent folder that may not be searched (Python < 3.12 raises here)
        raise IndexWriteError(
            f"Cannot reach the index folder {index_dir} ({exc.strerror or exc}). {WRITE_FIX}"
        ) from exc
    if not index_dir.is_dir() or (index_dir / marker).exists():
        return
    try:
        names = [p.name for p in index_dir.iterdir()]
    except OSError as exc:
        raise IndexWriteError(f"Cannot list the index folder {index_dir} ({exc.strerror or exc}). {WRITE_FIX}") from exc
    foreign = [name for name in names if name not in allowed]
    if foreign:
        raise RagError(
            f"{index_dir} holds files that are not part of an index ({', '.join(sorted(foreign)[:3])}); "
            "refusing to replace it. Choose an empty or new folder with --index-dir."
        )


def replace_dir(index_dir: Path, fill: Callable[[Path], None], *, keep: Collection[str] = ()) -> None:
    """Create a temporary folder beside ``index_dir``, let ``fill`` write into it, then swap it in by renames.

    Files named in ``keep`` (a README) are carried over from the old folder. Any filesystem failure becomes
    an :class:`IndexWriteError` naming the path; the previous folder (if any) is left in place, or moved
    back if the failure came between the two renames.
    """
    shown = index_dir
    index_dir = index_dir.absolute()
    parent = index_dir.parent
    check_no_file_in_the_way(shown)
    step = f"creating the folder {parent}"
    tmp: Path | None = None
    old_home: Path | None = None  # a temporary folder holding the previous index during the swap
    old_moved = False
    try:
        parent.mkdir(parents=True, exist_ok=True)
        step = f"creating a temporary folder in {parent}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.tmp-", dir=parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the index becomes an ordinary folder
        step = f"writing the new index files in {tmp}"
        fill(tmp)
        if index_dir.is_dir():
            for name in keep:
                if (index_dir / name).is_file():
                    shutil.copy2(index_dir / name, tmp / name)
            step = f"creating a temporary folder in {parent}"
            old_home = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.old-", dir=parent))
            step = f"moving the previous index {index_dir} aside"
            os.replace(index_dir, old_home / "index")
            old_moved = True
        step = f"renaming {tmp} to {index_dir}"
        os.replace(tmp, index_dir)
        tmp = None
        old_moved = False
    except BaseException as exc:
        state = "The previous index, if any, is unchanged."
        if old_moved and old_home is not None:
            try:
                os.replace(old_home / "index", index_dir)
                old_moved = False
            except OSError:
                state = f"The previous index is in {old_home / 'index'}: move it back to {index_dir}."
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old_home is not None and not old_moved:
            shutil.rmtree(old_home, ignore_errors=True)
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc) or exc.__class__.__name__
            if exc.filename:
                why += f": {exc.filename}"
            raise IndexWriteError(
                f"Cannot write the index {shown}: {step} failed ({why}). {state} {WRITE_FIX}"
            ) from exc
        raise
    if old_home is not None:
        shutil.rmtree(old_home, ignore_errors=True)


def lock_path(index_dir: Path) -> Path:
    """The lock file of ``index_dir``: beside it, since the folder itself is replaced by renames."""
    index_dir = index_dir.absolute()
    return index_dir.parent / f".{index_dir.name}.lock"


@contextlib.contextmanager
def writer_lock(index_dir: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the one-writer lock of ``index_dir`` (an advisory ``flock``, released by the OS when the process
    ends, so a killed writer leaves no stale lock). Another holder makes this wait, after telling
    ``on_wait`` who holds it, or raise :class:`IndexBusy` at once when not ``wait``.

    Under the lock, what a killed writer left behind is cleaned up first (:func:`recover`).
    """
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

    A previous index moved aside but not replaced (killed between the two renames) is moved back; the
    temporary folders of unfinished builds are removed.
    """
    index_dir = index_dir.absolute()
    parent = index_dir.parent
    if not parent.is_dir():
        return
    leftovers = sorted(parent.glob(f".{index_dir.name}.old-*")) + sorted(parent.glob(f".{index_dir.name}.tmp-*"))
    for old in leftovers:
        if old.name.startswith(f".{index_dir.name}.old-") and (old / "index").is_dir() and not index_dir.exists():
            os.replace(old / "index", index_dir)
            log.warning("restored the previous index %s, left aside by an interrupted build", index_dir)
        shutil.rmtree(old, ignore_errors=True)
