"""A killed run's Chromium profile and Playwright artifacts go at the next start; a live run's stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from connectors import TEMP_PREFIX, owned_browsers, sweep_temp_roots
from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, spawn_run
from tests.test_runtime_kill import _wait
from vault import Vault


def _roots_of(pid: int) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{pid}-*"))


def _leftovers(root: Path) -> set[str]:
    """What Playwright's driver made for a browser in ``root``, by kind."""
    return {name for entry in root.iterdir() for name in ("profile", "artifacts") if name in entry.name}


@pytest.mark.browser
def test_the_next_start_sweeps_the_temp_dirs_of_a_killed_run_and_leaves_a_live_ones(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    population.switches.fault_slow_rate, population.switches.slow_seconds = 1.0, 1.0  # a long walk
    population.traffic.reset()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # another run, alive
    live_root = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{live.pid}-"))
    (live_root / "playwright-artifacts-x").mkdir()
    child = spawn_run("persons", "donghu")
    try:
        try:
            _wait(lambda: child.pid in owned_browsers().values(), "the child's Chromium")
            _wait(lambda: population.traffic.requests, "the child's first request")  # it is walking now
            (root,) = _roots_of(child.pid)
            assert _leftovers(root) == {"profile", "artifacts"}
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # Python and Playwright's driver at once
            child.wait()
        assert root.is_dir()  # nothing of the killed run cleaned up after it

        population.switches.fault_slow_rate = 0.0
        (after,) = harvest(settings, store, vault, [("persons", "donghu")])  # the next start

        assert after.status == "ok"
        assert not root.exists()
        assert child.pid not in owned_browsers().values()
        assert (live_root / "playwright-artifacts-x").is_dir()
    finally:
        live.kill()
        live.wait()
        sweep_temp_roots()


def test_the_sweep_takes_only_roots_of_dead_processes(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    roots = {
        name: tmp_path / name
        for name in (f"{TEMP_PREFIX}{dead.pid}-a1", f"{TEMP_PREFIX}{os.getpid()}-b2", "gridharvest-notapid")
    }
    for root in roots.values():
        (root / "playwright_chromiumdev_profile-x").mkdir(parents=True)
    (tmp_path / f"{TEMP_PREFIX}{dead.pid}-link").symlink_to(roots[f"{TEMP_PREFIX}{os.getpid()}-b2"])

    assert sweep_temp_roots(tmp_path) == [roots[f"{TEMP_PREFIX}{dead.pid}-a1"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{TEMP_PREFIX}{os.getpid()}-b2", "gridharvest-notapid", f"{TEMP_PREFIX}{dead.pid}-link"]
    )
