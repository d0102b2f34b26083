"""The worker pool on real Redis, PostgreSQL and `harvest worker` processes, against the sandbox."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from connectors import owned_browsers
from sandbox import Sandbox
from sandbox._system import SandboxSystem
from scheduler import RunRequest
from scheduler._dramatiq import QUEUE, DramatiqExecutor, send
from settings import Settings, load_settings
from store import Lease, Store, make_engine
from tests.pool_helpers import queue_drained, runs, workers
from tests.runtime_helpers import snapshot
from tests.scheduler_helpers import wait_for
from tests.services import PostgresServer
from vault import Vault

pytestmark = pytest.mark.browser
ACCOUNTS = ("donghu", "xiyuan", "nanshan")


def _job(account: str) -> str:
    return f"persons@population/{account}"


def _pages_read(system: SandboxSystem, user: str) -> int:
    return sum(q.username == user and q.path.startswith("/persons") for q in list(system.traffic.requests))


def test_a_message_is_the_job_and_the_run_id_and_nothing_else() -> None:
    broker = StubBroker()
    broker.declare_queue(QUEUE)
    send(broker, RunRequest(_job("donghu"), "abc123"), delay=0)
    message = dramatiq.Message.decode(broker.queues[QUEUE].get_nowait())
    assert (message.actor_name, message.args) == ("harvest_run", (_job("donghu"), "abc123"))
    assert message.kwargs == {}
    assert set(message.options) <= {"redis_message_id"}  # no retries, no time limit of Dramatiq's


@pytest.fixture
def pool(
    settings: Settings,
    vault: Vault,
    postgres: PostgresServer,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Settings, Store]]:
    """Settings of a pool on PostgreSQL and Redis, a worker silent for 2 s counting as dead."""
    url = postgres.create_database()
    for name, value in {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "EXECUTOR": "dramatiq",
        "WORKER_HEARTBEAT_S": "2",
        "STOP_TIMEOUT_S": "0",
    }.items():
        monkeypatch.setenv(f"HARVEST_{name}", value)
    store = Store(make_engine(url))
    try:
        yield load_settings(), store
    finally:
        store.engine.dispose()
        postgres.drop_database(url)


def test_two_workers_run_what_the_scheduler_sends_and_a_killed_workers_run_is_redelivered_once(
    pool: tuple[Settings, Store], vault: Vault, sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    settings, store = pool
    system = sandbox["population"]
    executor = DramatiqExecutor(settings)
    with workers(2, tmp_path / "logs") as (first, second):
        # A round of the three accounts: both workers take runs, one session per account.
        for account in ACCOUNTS:
            executor.submit(RunRequest(_job(account), uuid.uuid4().hex))
        wait_for(lambda: sum(r.status == "ok" for r in runs(store)) == 3, "the first round", timeout=120)
        assert {r.pid for r in runs(store)} == {first.pid, second.pid}
        logins = [e.username for e in system.gate.events if e.event == "login"]
        assert sorted(logins) == sorted(system.account(a).username for a in ACCOUNTS)

        # The kill: a worker dies in the middle of a run whose pages are being read, a run that logged
        # in with Chromium (its account's session gone overnight, its login form's recipe lost) and
        # read on by HTTP.
        user = system.account("donghu").username
        vault.clear_session("population", "donghu")
        vault.login_recipes("population", "donghu").keep(None)  # and no recipe for a login by HTTP
        system.gate.end_sessions(user)
        system.switches.fault_slow_rate, system.switches.slow_seconds = 1.0, 1.0
        events = len(system.gate.events)
        killed_id = uuid.uuid4().hex
        executor.submit(RunRequest(_job("donghu"), killed_id))

        read_at_login: list[int] = []
        logs = tmp_path / "logs"

        def mid_walk() -> bool:
            # Not mid-login: a password whose answer the run has not seen yet counts as spent, and the
            # next attempt would park the account (the lockout guard), which is not what this tests.
            if not read_at_login and any(
                f"{killed_id[:8]} 已登录" in log.read_text(errors="replace") for log in logs.glob("*.log")
            ):
                read_at_login.append(_pages_read(system, user))
            return bool(read_at_login) and _pages_read(system, user) > read_at_login[0]

        wait_for(mid_walk, "the run to log in and read a page", timeout=60)
        pid = next(r.pid for r in runs(store) if r.id == killed_id)
        (victim,) = [p for p in (first, second) if p.pid == pid]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        system.switches.fault_slow_rate = 0.0
        wait_for(lambda: any(r.status == "ok" for r in runs(store, "donghu")[1:]), "the redelivered run", 60)
        wait_for(lambda: queue_drained(redis_url), "the queue to drain", timeout=30)

        mine = {r.id: r.status for r in runs(store, "donghu")}
        assert mine[killed_id] == "killed" and mine[f"{killed_id}-2"] == "ok"
        assert list(mine.values()).count("ok") == 2 and len(mine) == 3  # round one's, and the one again
        people = snapshot(store, "persons", "donghu")
        assert len(people) == people["id_number"].nunique() > 0
        assert Lease(store.engine, "account:population/donghu", what="test").holder() is None
        # The run again took up the dead one's session, kept at its login: no login ended it.
        after = [(e.username, e.event) for e in list(system.gate.events)[events:]]
        assert after == [(user, "login")]
        assert [e for e in system.gate.events if e.event == "kicked"] == []
        wait_for(lambda: victim.pid not in owned_browsers().values(), "the dead worker's Chromium to go", 30)

        # A message delivered again for runs that ended does nothing.
        survivor = second if victim is first else first
        before = len(runs(store))
        executor.submit(RunRequest(_job("donghu"), killed_id))  # its last attempt ended ok
        executor.submit(RunRequest(_job("xiyuan"), runs(store, "xiyuan")[0].id))
        wait_for(lambda: queue_drained(redis_url), "the queue to drain", timeout=30)
        time.sleep(0.5)
        assert len(runs(store)) == before
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0
    executor.stop(0)
