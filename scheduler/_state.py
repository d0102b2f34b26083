"""What the scheduler remembers about each job and dataset, in the project database (so every
worker of a pool reads and writes the same)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel

from store import create_tables


class JobState(SQLModel, table=True):
    """What the scheduler remembers about a job or a dataset between runs and restarts."""

    __tablename__ = "scheduler_state"

    key: str = Field(primary_key=True)  # a job id, or "stale:<dataset>"
    kind: str | None = None  # the open problem a person was told about; None when healthy
    since: dt.datetime | None = None
    retries: int = 0
    owed: bool = False  # stopped with the scheduler before it could run or finish: run at next start
    last_status: str | None = None
    last_at: dt.datetime | None = None


class JobStates:
    """Read and write ``JobState`` rows."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, [JobState.__table__])  # type: ignore[list-item]

    def get(self, key: str) -> JobState:
        with Session(self.engine) as session:
            return session.get(JobState, key) or JobState(key=key)

    @contextlib.contextmanager
    def editing(self, key: str) -> Iterator[JobState]:
        """The state of ``key``, read and written back in one transaction that holds its row: two runs
        of a job ending together in different processes (a run skipped behind the one that parked
        its account) would otherwise both read "no one told yet" and both alert."""
        table = JobState.__table__  # type: ignore[attr-defined]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with Session(self.engine) as session, session.begin():
            # A write comes first: SQLite's driver begins the transaction, and takes the database's
            # write lock, only at the first write; PostgreSQL can lock only a row that exists.
            session.execute(insert(table).values(key=key).on_conflict_do_nothing())
            state = session.get(JobState, key, with_for_update=True)
            assert state is not None
            yield state

    def save(self, state: JobState) -> None:
        with Session(self.engine) as session:
            session.merge(state)
            session.commit()
