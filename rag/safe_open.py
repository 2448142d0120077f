"""Open, then check: read a file through a descriptor and check what was opened, not the path.

A path checked at one moment and opened at the next can be swapped in between (a symlink to a file outside
the corpus, a FIFO that blocks a reader forever, ``/dev/zero`` that never ends). Here the file is opened
first, without following a final symlink unless asked to, non-blocking (so a FIFO or a device opens at once
instead of waiting for a writer), and its ``fstat`` is then checked: a regular file, the device and inode the
scan saw when one is expected, and no larger than the bound. Only then are its bytes read, at most the bound.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import NamedTuple


class FileId(NamedTuple):
    """The file a scan saw: its device and inode, and whether it was reached through a symlink."""

    dev: int
    ino: int
    via_link: bool = False


class NotSafe(OSError):
    """The file at the path is not the regular file expected (its ``reason`` says what it is instead)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(NotSafe):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, over the {limit} byte limit")
        self.size, self.limit = size, limit


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def open_checked(path: Path | str, *, follow: bool = False, expect: FileId | None = None) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and non-blocking, and check it is a regular file (the one ``expect`` names).

    ``follow``: follow a symlink at the last component (without it a symlink there is refused). Returns the
    descriptor, in blocking mode again, and its ``fstat``; raises :class:`NotSafe` (closing it) otherwise.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise NotSafe("a symlink (not followed), not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotSafe(f"{kind_of(st.st_mode)}, not a regular file")
        if expect is not None and (st.st_dev, st.st_ino) != (expect.dev, expect.ino):
            raise NotSafe("it was replaced after the scan (another file is at that path now)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_fd(fd: int, limit: int | None) -> bytes:
    """Read the whole file behind ``fd``, at most ``limit`` bytes (:class:`TooLarge` beyond, even if it grows)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        block = os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit + 1 - total))
        if not block:
            break
        chunks.append(block)
        total += len(block)
        if limit is not None and total > limit:
            raise TooLarge(total, limit)
    return b"".join(chunks)


def read_checked(
    path: Path | str, *, follow: bool = False, expect: FileId | None = None, limit: int | None = None
) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file at ``path`` (see :func:`open_checked`), at most ``limit`` of them."""
    fd, st = open_checked(path, follow=follow, expect=expect)
    try:
        if limit is not None and st.st_size > limit:
            raise TooLarge(st.st_size, limit)
        return read_fd(fd, limit), st
    finally:
        os.close(fd)


def sha256_checked(path: Path | str, *, follow: bool = False) -> str:
    """The sha256 of the regular file at ``path`` (see :func:`open_checked`), read in blocks."""
    fd, _ = open_checked(path, follow=follow)
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()
