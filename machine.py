"""What every package asks this machine the same way: the time now, a time as people here read it,
whether a process still runs, files that only their owner may read, and a coroutine run from
synchronous code.

Times are stored in UTC and shown in the unit's zone (``HARVEST_TIMEZONE``, Beijing time by default),
always with the zone's name beside them, so no one has to guess which clock a line was written by.

Everything we write under the data dir holds personal data or secrets (the database, logs, evidence
pages, the vault), so folders are made 0700 and files 0600 whatever the umask, and a path found
wider than that (made by an older version, or by hand) is tightened when we next write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_ZONE",
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "exposed_paths",
    "human_time",
    "local_time",
    "open_private",
    "pid_alive",
    "private_dir",
    "private_file",
    "tighten",
    "utc_now",
    "write_private",
    "zone",
    "zone_label",
]

DEFAULT_ZONE = "Asia/Shanghai"
_LABELS = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "PRC": "北京时间", "UTC": "UTC"}


def utc_now() -> dt.datetime:
    """Now, aware, in UTC: what the database and the logs keep."""
    return dt.datetime.now(dt.UTC)


def zone(name: str | None = None) -> ZoneInfo:
    """The named zone (the unit's ``HARVEST_TIMEZONE``); an unknown name is a ``ValueError`` that says so."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use a name like Asia/Shanghai") from exc


def zone_label(name: str | None = None) -> str:
    """How people name the zone: 北京时间 for China's, else its IANA name."""
    return _LABELS.get(name or DEFAULT_ZONE, name or DEFAULT_ZONE)


def local_time(when: dt.datetime, name: str | None = None) -> dt.datetime:
    """``when`` in the unit's zone; a naive time is taken as UTC (SQLite hands them back naive)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return aware.astimezone(zone(name))


def human_time(when: dt.datetime | None, name: str | None = None, *, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``when`` as staff read it, labelled: ``2026-12-01 22:10 北京时间``; None is ``-``."""
    if when is None:
        return "-"
    return f"{local_time(when, name):{fmt}} {zone_label(name)}"


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` of this machine still run? (One that is not ours to signal counts as alive.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # the group's and everyone else's bits


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open`` of a file only its owner may read: created 0600, tightened if found wider.

    Shaped as an ``opener`` for ``open()`` (and loguru's file sinks): ``open(p, "a", opener=open_private)``.
    """
    fd = os.open(path, flags, PRIVATE_FILE)  # the umask can only take bits away from 0600
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & _OTHERS:
            os.fchmod(fd, mode & ~_OTHERS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_file(path: Path) -> Path:
    """``path`` as a private file: created empty if missing (an empty file is a valid SQLite database).

    An existing file is only chmod-ed, never opened: closing any descriptor of a SQLite database drops
    every POSIX lock this process holds on it, the locks of its open connections included.
    """
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        tighten(path)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``path`` whole as a private file (text as UTF-8)."""
    with open(path, "wb", opener=open_private) as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)


def _wide_mode(path: Path) -> int | None:
    """The permission bits of ``path`` when others have any; None if it is private, a link or missing."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    return stat.S_IMODE(mode) if not stat.S_ISLNK(mode) and mode & _OTHERS else None


def tighten(path: Path) -> None:
    """Take the group's and others' bits off ``path``, if it has any; a missing path or a link stays."""
    mode = _wide_mode(path)
    if mode is not None:
        path.chmod(mode & ~_OTHERS)


def private_dir(path: Path, *, within: Path | None = None) -> Path:
    """``path`` as a folder only its owner may enter: missing folders are made 0700 (``mkdir -p``
    would make the parents with the umask's mode), and ``path`` and the folders from ``within``
    (the data dir) down to it are tightened if found wider."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=PRIVATE_DIR)
    top = within if within is not None and path.is_relative_to(within) else path
    for folder in (path, *path.parents):
        tighten(folder)
        if folder == top:
            break
    return path


def exposed_paths(data_dir: Path) -> list[Path]:
    """The data dir and the paths under it that others than their owner may read, write or enter."""
    found = []
    for folder, _dirs, files in os.walk(data_dir):  # a missing data dir walks nothing
        root = Path(folder)
        found += [path for path in (root, *(root / name for name in files)) if _wide_mode(path) is not None]
    return sorted(found)


def run_blocking(call: Callable[[], Any]) -> Any:
    """Run the coroutine ``call()`` returns to completion, from synchronous code.

    In a thread that already runs an event loop (Playwright's sync API does, under pytest
    or inside another framework) the coroutine gets its own thread and loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop_running = False
    else:
        loop_running = True
    if not loop_running:  # outside the except block, so tracebacks do not chain a RuntimeError
        return asyncio.run(call())
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(call()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="harvest")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
