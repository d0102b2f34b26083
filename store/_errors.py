"""What the store refuses, said in the type; each ``kind`` is a kind of the run failures' vocabulary
(the ``HarvestFailure`` tree in ``connectors``), which the runner turns these into at one boundary.

    StoreError                  kind            what to do
    ├── StoreUnavailable        error           the database cannot be used: the message says why
    ├── StoreFull               disk_full       no space left under the database: free some, run again
    ├── SchemaMismatch          error           the record class no longer fits its table: keep or rename
    ├── PublishRefused          layout_changed  the shrink guard: the run saw far fewer records than before
    └── UnknownRun              error           no such run, or it is not running any more

None of them leaves the snapshot changed: each is raised before a write or rolls its transaction back.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import ClassVar

import sqlalchemy as sa

SQLSTATE_DISK_FULL = "53100"  # PostgreSQL's disk_full


class StoreError(RuntimeError):
    """Base of the store's errors; ``str()`` is the one line to show, ``kind`` goes into the run record."""

    kind: ClassVar[str] = "error"


class StoreUnavailable(StoreError):
    """The database cannot be used; the message says what to do."""


class StoreFull(StoreError):
    """The disk under the database is full; the transaction that met it was rolled back."""

    kind = "disk_full"


class SchemaMismatch(StoreError):
    """The record class no longer fits its table in a way the store cannot upgrade in place."""


class PublishRefused(StoreError):
    """Publishing would do harm (the shrink guard); the run ended ``layout_changed`` and nothing changed."""

    kind = "layout_changed"


class UnknownRun(StoreError, KeyError):
    """No run with that id, or it is not running any more."""


def is_disk_full(exc: BaseException) -> bool:
    """Did ``exc`` come from a full disk: an OS write, SQLite's SQLITE_FULL or PostgreSQL's disk_full?"""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(cause, sqlite3.Error):
        return getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(cause, "sqlstate", None) == SQLSTATE_DISK_FULL
