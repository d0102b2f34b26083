"""Leases live in the database: they hold across processes and free themselves."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from store import Lease, LeaseRow, Store, make_engine


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
