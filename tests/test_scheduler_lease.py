"""Leases live in the database: they hold across processes and free themselves."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from store import Lease, LeaseRow, Store, make_engine
from tests.services import PostgresServer


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(make_engine(database_url))


def test_a_lease_is_held_by_one_owner_until_released(store: Store) -> None:
    first = Lease(store.engine, "account:civil/donghu", what="harvest run")
    second = Lease(store.engine, "account:civil/donghu", what="harvest schedule")
    assert first.try_acquire()
    assert not second.try_acquire()
    holder = second.holder()
    assert holder is not None and holder.what == "harvest run" and holder.host == socket.gethostname()
    assert "harvest run" in str(holder) and str(holder.pid) in str(holder)
    first.release()
    assert second.try_acquire()
    second.release()
    assert Lease(store.engine, "account:civil/donghu", what="x").holder() is None


def test_a_lease_is_renewed_while_held_and_taken_over_once_expired(store: Store) -> None:
    held = Lease(store.engine, "scheduler", what="harvest schedule", ttl=0.6)
    assert held.try_acquire()
    time.sleep(1.5)  # well past one ttl: only the renewals keep it
    assert not Lease(store.engine, "scheduler", what="x").try_acquire()
    held._held.clear()  # the holder hangs: no more renewals, no release
    time.sleep(1.0)
    assert Lease(store.engine, "scheduler", what="x").try_acquire()


def test_a_lease_outlives_a_database_that_blinks(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    try:
        held = Lease(make_engine(url), "scheduler", what="harvest schedule", ttl=3.0)
        assert held.try_acquire()
        with _unreachable(postgres, url):
            time.sleep(2.5)  # renewals fail meanwhile
        time.sleep(3.5)  # past the last expiry the failed renewals could not push back
        assert not Lease(make_engine(url), "scheduler", what="x").try_acquire()
        held.release()
    finally:
        postgres.drop_database(url)


@contextlib.contextmanager
def _unreachable(postgres: PostgresServer, url: str) -> Iterator[None]:
    """The database refuses every connection, its open ones cut, as during a restart or failover."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = f"host=127.0.0.1 port={postgres.port} user={postgres.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_a_dead_process_on_this_host_frees_its_lease_at_once(store: Store) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = Lease(store.engine, "scheduler", what="harvest schedule")
    table = LeaseRow.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # as a scheduler killed with SIGKILL leaves it
        conn.execute(
            sa.insert(table).values(
                key="scheduler", owner=f"{socket.gethostname()}:{dead.pid}:abc", expires=time.time() + 3600
            )
        )
    assert lease.try_acquire()
    lease.release()
