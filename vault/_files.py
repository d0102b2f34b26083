"""File mechanics that keep the vault whole through crashes and concurrent writers.

* ``write_atomic``: a temp file in the same folder, fsync, ``os.replace``, fsync the folder:
  a reader sees the old file or the new one, never half of either.
* ``locked``: an exclusive ``flock`` that every read-modify-write of the vault holds, so
  two scheduler workers parking accounts at once both land.
* ``swap`` / ``recover``: several files replaced as one (the vault and its key on
  rotation). The staged files are written first; a journal naming the moves is the commit
  point; ``recover`` (run under the lock before any use) finishes a committed swap or
  drops an uncommitted one, so a crash anywhere leaves old files with the old key or new
  files with the new key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from machine import open_private


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600, whatever the umask) and fsync it."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    temp = _temp_name(path)
    try:
        write_new(temp, data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``lock_file`` (created if missing); the kernel drops it if we die."""
    fd = open_private(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def staged(final: Path) -> Path:
    """Where the next version of ``final`` waits until a swap commits it."""
    return final.with_name(final.name + ".new")


def swap(journal: Path, finals: list[Path]) -> None:
    """Move each staged file onto its final path, all or none across a crash.

    The staged files must be written and fsynced already; writing the journal commits.
    """
    moves = [[str(staged(final)), str(final)] for final in finals]
    write_atomic(journal, json.dumps(moves).encode())
    _finish(journal)


def _finish(journal: Path) -> None:
    for source, target in json.loads(journal.read_bytes()):
        if os.path.exists(source):
            os.replace(source, target)
            fsync_dir(Path(target).parent)
    os.unlink(journal)
    fsync_dir(journal.parent)


def recover(journal: Path, finals: list[Path]) -> None:
    """Finish a committed swap, or drop the staged and temp files of one that never committed.

    Call with the lock held: then no other writer has a temp file open.
    """
    if journal.exists():
        _finish(journal)
    for final in finals:
        leftovers = [staged(final), *final.parent.glob(f".{final.name}.*.tmp")]
        for path in leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    for temp in journal.parent.glob(f".{journal.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def append_line(path: Path, line: str) -> None:
    """Append one line in one write (O_APPEND): concurrent writers never interleave within a line."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)
