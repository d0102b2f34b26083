"""Leases: locks kept in the project database, so they hold for every process and machine sharing it.

Every run takes its account's lease (``account:<system>/<account>``), whoever started it: `harvest run`,
the scheduler, a worker elsewhere; the scheduler also holds ``scheduler``, one per database.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from loguru import logger
from sqlmodel import Field, Session, SQLModel

from machine import pid_alive
from store._errors import StoreError
from store._tables import create_tables


class LeaseRow(SQLModel, table=True):
    """Who holds a lease, until when (seconds since the epoch)."""

    __tablename__ = "lease"

    key: str = Field(primary_key=True)
    owner: str  # one Lease object: host:pid:nonce
    what: str = ""  # what holds it, as people name it: `harvest run`, `harvest schedule`
    since: float = 0.0
    expires: float


@dataclass(frozen=True)
class Holder:
    """The holder of a lease, for the line that tells someone who is in the way."""

    host: str
    pid: int
    what: str
    since: float  # seconds since the epoch

    def __str__(self) -> str:
        return f"{self.what or '另一个进程'}（主机 {self.host}，进程 {self.pid}）"


class Lease:
    """A lock on ``key`` in the database, renewed every third of ``ttl`` while held.

    A holder that dies without releasing it frees it within ``ttl`` seconds, at once if it was a
    process of this host that no longer runs.
    """

    def __init__(self, engine: sa.Engine, key: str, *, what: str, ttl: float = 60.0) -> None:
        self.engine = engine
        self.key = key
        self.what = what
        self.ttl = ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held = threading.Event()
        self._renewer: threading.Thread | None = None
        create_tables(engine, [LeaseRow.__table__])  # type: ignore[list-item]

    def holder(self) -> Holder | None:
        with Session(self.engine) as session:
            row = session.get(LeaseRow, self.key)
        if row is None or row.expires <= time.time():
            return None
        host, pid = _host_pid(row.owner)
        return Holder(host, pid, row.what, row.since)

    def try_acquire(self) -> bool:
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        now = time.time()
        mine = {"owner": self.owner, "what": self.what, "since": now, "expires": now + self.ttl}
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(table.c.owner).where(table.c.key == self.key)).scalar()
            free = sa.or_(table.c.expires < now, table.c.owner == self.owner)
            if row is not None and _dead_here(row):
                free = sa.or_(free, table.c.owner == row)
            taken = conn.execute(sa.update(table).where(table.c.key == self.key, free).values(mine)).rowcount
        if not taken and row is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(table).values(key=self.key, **mine))
                taken = 1
            except sa.exc.IntegrityError:  # another process inserted it first
                taken = 0
        if taken:
            self._held.set()
            self._renewer = threading.Thread(target=self._renew, name=f"lease {self.key}", daemon=True)
            self._renewer.start()
        return bool(taken)

    def release(self) -> None:
        self._held.clear()
        # The renewal ends first: one that ran on after the row is gone would report the lease lost,
        # or reach for a database its owner has since dropped.
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.ttl)
        self._renewer = None
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.key == self.key, table.c.owner == self.owner))

    def _renew(self) -> None:
        table = LeaseRow.__table__  # type: ignore[attr-defined]
        while not _sleep_unless_released(self._held, self.ttl / 3):
            try:
                with self.engine.begin() as conn:
                    kept = conn.execute(
                        sa.update(table)
                        .where(table.c.key == self.key, table.c.owner == self.owner)
                        .values(expires=time.time() + self.ttl)
                    ).rowcount
            except (sa.exc.SQLAlchemyError, StoreError) as exc:
                # A database that blinks must not end the renewal: tried again at the next third, the
                # lease is lost only if the database stays away past its expiry.
                logger.warning("租约 {} 暂时无法续期（{}），稍后再试", self.key, type(exc).__name__)
                continue
            if not kept:
                logger.error("租约 {} 已失去（过期后被另一个进程取得）", self.key)
                return


def _sleep_unless_released(held: threading.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True if the lease was released meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not held.is_set():
            return True
        time.sleep(min(0.2, seconds))
    return not held.is_set()


def _host_pid(owner: str) -> tuple[str, int]:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else 0


def _dead_here(owner: str) -> bool:
    """Is ``owner`` a process of this host that no longer runs?"""
    host, pid = _host_pid(owner)
    return host == socket.gethostname() and pid > 0 and not pid_alive(pid)
