"""Every run takes its account's lease: two runs by hand, or one beside the scheduler, never log in
over each other (the sandbox sees no kicked session), and a run that cannot wait says who holds it."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess

import pytest

from sandbox import Sandbox
from settings import Settings
from store import Lease, Store, make_engine
from tests.runtime_helpers import HARVEST, manual_run
from tests.scheduler_helpers import wait_for
from vault import Vault

pytestmark = pytest.mark.browser


@pytest.fixture
def store(settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The runs' database, SQLite or PostgreSQL: each `harvest` child finds it in HARVEST_DATABASE_URL."""
    monkeypatch.setenv("HARVEST_DATABASE_URL", database_url)
    return Store(make_engine(database_url))


def _session_events(sandbox: Sandbox, system: str, account: str) -> list[str]:
    username = sandbox[system].account(account).username
    return [e.event for e in sandbox[system].gate.events if e.username == username]


def _held(store: Store, system: str, account: str) -> bool:
    return Lease(store.engine, f"account:{system}/{account}", what="a test").holder() is not None


def test_two_manual_runs_of_one_account_take_turns_with_one_login(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    runs = [manual_run("elderly", "donghu") for _ in range(2)]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert _session_events(sandbox, "civil", "donghu") == ["login"]  # the second reused the saved session


def test_a_manual_run_that_cannot_wait_refuses_and_names_the_holder(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    civil = sandbox["civil"]
    civil.switches.fault_slow_rate, civil.switches.slow_seconds = 1.0, 2.0  # the first run takes a while
    first = manual_run("elderly", "donghu")
    wait_for(lambda: _held(store, "civil", "donghu"), "the first run to take the account")
    second = manual_run("elderly", "donghu", HARVEST_ACCOUNT_WAIT_S="0")
    refused = second.communicate(timeout=120)[0]
    assert first.wait(timeout=180) == 0
    assert second.returncode == 8, refused
    line = next(line for line in refused.splitlines() if "account_busy" in line and "占用" in line)
    assert f"进程 {first.pid}" in line and "harvest run（" in line
    assert "harvest run elderly --account donghu" in line  # the fix: run again when it is free
    assert "kicked" not in _session_events(sandbox, "civil", "donghu")


def test_a_manual_run_beside_the_scheduler_waits_for_it_and_never_kicks_its_session(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    civil = sandbox["civil"]
    civil.switches.fault_slow_rate, civil.switches.slow_seconds = 1.0, 2.0
    due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    once = json.dumps({"elderly": f"{due.second} {due.minute} {due.hour} * * *"})
    env = {"HARVEST_SCHEDULES": once, "HARVEST_SCHEDULE_JITTER_S": "0", "HARVEST_TIMEZONE": "UTC"}
    daemon = subprocess.Popen(
        [str(HARVEST), "schedule"], env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: _held(store, "civil", "donghu"), "the scheduled run to take the account")
        refused = manual_run("elderly", "donghu", HARVEST_ACCOUNT_WAIT_S="0").communicate(timeout=120)[0]
        waited = manual_run("elderly", "donghu")
        assert waited.wait(timeout=180) == 0, waited.communicate()[0]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert "account_busy" in refused and "harvest schedule（" in refused
    assert _session_events(sandbox, "civil", "donghu") == ["login"]
