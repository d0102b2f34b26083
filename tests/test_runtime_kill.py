"""A SIGKILLed run leaves no Chromium behind after the next start, and the snapshot as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, select

from connectors import owned_browsers, sweep_orphan_browsers
from sandbox import Sandbox
from settings import Settings
from store import Run, Store
from tests.runtime_helpers import harvest, snapshot, spawn_run
from vault import Vault

pytestmark = pytest.mark.browser
def _wait(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_run_leaves_no_browser_after_the_next_start_and_the_snapshot_untouched(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    (good,) = harvest(settings, store, vault, [("persons", "donghu")])
    before = snapshot(store, "persons")
    population = sandbox["population"]
    population.switches.fault_slow_rate, population.switches.slow_seconds = 1.0, 1.0  # a long login and walk
    population.traffic.reset()
    # Chromium runs only while a session logs in or renders: without the saved session, and without
    # the recipe that would post the form over HTTP, the child logs in, slowly, and is killed with its
    # browser up.
    vault.clear_session("population", "donghu")
    vault.login_recipes("population", "donghu").keep(None)

    child = spawn_run("persons", "donghu")
    try:
        _wait(lambda: child.pid in owned_browsers().values(), "the child's Chromium")
        _wait(lambda: any(r.status == "running" for r in _runs(store)), "the child's run")
        _wait(lambda: population.traffic.requests, "the child's first request")  # it is logging in now
        assert child.pid in owned_browsers().values()
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # Python and Playwright's driver at once
        child.wait()
    running = [r for r in _runs(store) if r.status == "running"]
    assert len(running) == 1

    population.switches.fault_slow_rate = 0.0
    (after,) = harvest(settings, store, vault, [("persons", "donghu")])  # the next start

    assert child.pid not in owned_browsers().values()
    assert store.run(running[0].id).status == "killed"
    assert after.status == "ok" and after.unchanged == good.records
    assert (
        snapshot(store, "persons")[before.columns]
        .drop(columns=["last_seen_run"])
        .equals(before.drop(columns=["last_seen_run"]))
    )


def test_the_sweep_ends_only_browsers_whose_owner_is_dead(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    marked = [
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)", f"--gridharvest-owner={owner}"],
            start_new_session=True,  # a process-group leader, as Playwright starts Chromium
        )
        for owner in (dead.pid, os.getpid())
    ]
    try:
        _wait(lambda: {p.pid for p in marked} <= set(owned_browsers()), "the marked processes")
        assert sweep_orphan_browsers() == [marked[0].pid]
        assert marked[0].wait(timeout=10) == -signal.SIGKILL
        assert marked[1].poll() is None  # its owner (this test) is alive
    finally:
        for process in marked:
            process.kill()
            process.wait()


def _runs(store: Store) -> list[Run]:
    with Session(store.engine) as session:
        return list(session.exec(select(Run)))
