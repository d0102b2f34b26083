"""A system's limits hold across every process sharing the database: at most ``sessions`` accounts
harvest it at once (slot leases, ``system:<name>:<i>``), each at its slot's share of the declared
rate and concurrency, and a run by hand that finds every slot taken says who holds them."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import subprocess
import sys
import time
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from connectors import Politeness
from robots.runtime import discover
from sandbox import Sandbox
from scheduler import HarvestScheduler
from settings import load_settings
from store import Lease, Run, Store, make_engine
from tests.runtime_helpers import manual_run
from tests.scheduler_helpers import wait_for
from vault import Vault

HOLD = """
import sys, time
from store import Lease, make_engine
lease = Lease(make_engine(sys.argv[1]), sys.argv[2], what="另一台机器的 harvest worker")
assert lease.try_acquire()
time.sleep(600)
"""


def _runs(store: Store) -> list[Run]:
    with Session(store.engine) as session:
        return list(session.exec(select(Run)))


def _logins(sandbox: Sandbox, system: str) -> list[str]:
    return [e.username for e in sandbox[system].gate.events if e.event == "login"]


@pytest.mark.parametrize(
    "declared",
    [Politeness(), Politeness(concurrency=3, sessions=2, rate=5), Politeness(concurrency=2, sessions=5)],
)
def test_the_slots_shares_add_up_to_the_declaration_and_each_has_a_request_of_its_own(
    declared: Politeness,
) -> None:
    shares = [declared.share(slot) for slot in range(declared.slots)]
    assert declared.slots == min(declared.sessions, declared.concurrency)
    assert sum(share.concurrency for share in shares) == declared.concurrency
    assert sum(share.rate for share in shares) == pytest.approx(declared.rate)
    assert min(share.concurrency for share in shares) >= 1
    assert shares[0].concurrency >= shares[-1].concurrency  # a lone run takes slot 0: the remainder


def test_the_sandbox_counts_the_accounts_it_serves_at_once(sandbox: Sandbox) -> None:
    gate = sandbox["civil"].gate
    tokens = []
    for account in sandbox["civil"].accounts[:2]:
        session = gate.anonymous(None)
        result = gate.login(session, account.username, account.password, session.csrf, "")
        assert result.session is not None, result
        tokens.append(result.session.token)
    for token in tokens:  # one after the other
        with gate.serving(token), gate.serving(token):
            pass
    assert gate.busiest == 1
    with gate.serving(tokens[0]), gate.serving(None), gate.serving(tokens[1]):
        pass
    assert gate.busiest == 2


@pytest.mark.browser
def test_a_run_by_hand_refuses_while_another_process_holds_the_only_slot_a_scheduled_one_waits_till_it_dies(
    database_url: str, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARVEST_DATABASE_URL", database_url)
    monkeypatch.setenv("HARVEST_POLITENESS", json.dumps({"civil": {"sessions": 1}}))
    store = Store(make_engine(database_url))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, database_url, "system:civil:0"])
    daemon: HarvestScheduler | None = None
    try:
        slot = Lease(store.engine, "system:civil:0", what="a test")
        wait_for(lambda: slot.holder() is not None, "the other process to take the slot", timeout=30)
        refused = manual_run("elderly", "donghu", HARVEST_ACCOUNT_WAIT_S="0").communicate(timeout=120)[0]
        settings = load_settings()
        due = dt.datetime.now(ZoneInfo(settings.timezone)) + dt.timedelta(seconds=2)
        cron = f"{due.second} {due.minute} {due.hour} * * *"
        queued = settings.model_copy(  # a refused job would be retried in 10 minutes: it must wait
            update={"schedules": {"elderly": cron}, "schedule_jitter_s": 0, "account_wait_s": 0}
        )
        daemon = HarvestScheduler(queued, robots={"elderly": discover()["elderly"]})
        daemon.start()
        time.sleep(max(0.0, (due - dt.datetime.now(due.tzinfo)).total_seconds()) + 2)  # due, and waiting
        assert not _logins(sandbox, "civil") and not _runs(store)
        holder.kill()  # its slot is free at once (a dead process of this host): a scheduled run takes it
        holder.wait()
        wait_for(lambda: any(run.status == "ok" for run in _runs(store)), "a scheduled run to end well")
    finally:
        holder.kill()
        holder.wait()
        if daemon is not None:
            daemon.stop(timeout=0)
    line = next((line for line in refused.splitlines() if "名额都在使用" in line), refused)
    assert "account_busy" in line
    assert f"另一台机器的 harvest worker（主机 {socket.gethostname()}，进程 {holder.pid}）" in line
    assert "harvest run elderly --account donghu" in line  # the fix: run again when one ends


@pytest.mark.browser
def test_three_processes_on_a_system_of_two_sessions_harvest_two_at_a_time_each_at_its_share_of_the_rate(
    database_url: str, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARVEST_DATABASE_URL", database_url)
    monkeypatch.setenv("HARVEST_POLITENESS", json.dumps({"population": {"sessions": 2, "rate": 4}}))
    population = sandbox["population"]
    runs = [manual_run("persons", account) for account in ("donghu", "xiyuan", "nanshan")]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    spans = []  # each account's run, from its first request after the login to its last
    for account in ("donghu", "xiyuan", "nanshan"):
        username = population.account(account).username
        mine = [r for r in population.traffic.requests if r.username == username]
        spans.append((min(r.started for r in mine), max(r.ended for r in mine)))
        # Every one through the slot's gate, at 2 a second: each gap is 0.5 s as the gate sends them,
        # give or take how long the browser took to send each; on average, 0.5 s.
        starts = sorted(r.started for r in mine)
        assert len(starts) >= 4 and (starts[-1] - starts[0]) / (len(starts) - 1) > 0.45, (account, starts)
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    assert max(itertools.accumulate(step for _, step in edges)) == 2  # two at a time, never three
    assert population.gate.busiest <= 2  # nor did the sandbox serve three accounts at once
