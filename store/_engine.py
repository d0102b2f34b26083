"""The database engine: SQLite in the data dir by default (WAL, sane pragmas), or PostgreSQL (psycopg 3)
or any other SQLAlchemy URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, event

from store._errors import StoreUnavailable

MIN_SQLITE = (3, 35, 0)  # RETURNING and the upsert forms the store uses
POSTGRES_DRIVER = "postgresql+psycopg"  # the `postgresql` extra installs psycopg 3


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL switched on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql"):
        return _postgres_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: str) -> Engine:
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


def _postgres_engine(url: str) -> Engine:
    """psycopg 3 whichever way the URL names PostgreSQL (a bare ``postgresql://`` would mean psycopg2).

    Sessions run in UTC: the store's times are UTC, kept in columns without a zone, which PostgreSQL
    would otherwise shift into the server's zone. Connections are checked before use (a restarted
    server or a firewall's idle cut costs a reconnect, not a failed run) and renewed every half hour.
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    try:
        engine = create_engine(
            parsed,
            connect_args={"options": "-c timezone=UTC"},
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    except ImportError as exc:
        raise StoreUnavailable(
            f"没有安装 PostgreSQL 的驱动（{exc.name}）：请运行 pip install 'gridharvest[postgresql]'"
        ) from exc
    shown = parsed.render_as_string(hide_password=True)

    def refused(context: sa.engine.ExceptionContext) -> None:
        """A connection the server refuses becomes one line naming the fix, never the password."""
        if context.connection is None and not context.is_pre_ping:
            reason = next(iter(str(context.original_exception).splitlines()), "").strip()
            raise StoreUnavailable(
                f"无法连接数据库 {shown}（{reason}）：确认 PostgreSQL 正在运行，"
                "并检查 HARVEST_DATABASE_URL 的主机、端口、库名、用户和密码"
            ) from context.original_exception

    event.listen(engine, "handle_error", refused)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets the desk read while a run publishes; NORMAL sync is durable across app crashes in WAL mode.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
