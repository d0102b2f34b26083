"""The database engine: SQLite in the data dir by default (WAL, sane pragmas), or any SQLAlchemy URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from store._errors import StoreUnavailable

MIN_SQLITE = (3, 35, 0)  # RETURNING and the upsert forms the store uses


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL switched on."""
    if url.startswith("sqlite"):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreUnavailable(
                f"SQLite {sqlite3.sqlite_version} is too old (need 3.35 or newer): "
                "upgrade the system's libsqlite3 or use PostgreSQL with HARVEST_DATABASE_URL"
            )
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool as wide as the desk's busy hour: past the pool, each connection was opened and closed
        # again per use, its pragmas run each time (a tenth of a search's work with 20 staff at once).
        engine = create_engine(url, connect_args={"timeout": 30}, pool_size=20, max_overflow=20)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets the desk read while a run publishes; NORMAL sync is durable across app crashes in WAL mode.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
