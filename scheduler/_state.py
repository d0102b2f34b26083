"""What the scheduler remembers about each job and dataset, in the project database (so every
worker of a pool reads and writes the same)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
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

    def save(self, state: JobState) -> None:
        with Session(self.engine) as session:
            session.merge(state)
            session.commit()
