"""Helpers the runtime tests share: run robots in a real Harvester, read the snapshot back."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from robots.runtime import Harvester, RobotSpec, RunReport, discover, registered, run_blocking
from settings import Settings
from store import Store
from vault import Vault

HARVEST = Path(sys.executable).with_name("harvest")
REPO = Path(__file__).parent.parent


def harvest(
    settings: Settings, store: Store, vault: Vault, plan: Iterable[tuple[str | RobotSpec, str]]
) -> list[RunReport]:
    """Run each (robot, account) in turn, in one Harvester (one Chromium)."""
    discover()
    specs = [(registered()[r] if isinstance(r, str) else r, account) for r, account in plan]

    async def go() -> list[RunReport]:
        async with Harvester(settings, store, vault) as harvester:
            return [await harvester.run(robot, account) for robot, account in specs]

    return run_blocking(go)


def snapshot(store: Store, dataset: str, scope: str | None = None) -> pd.DataFrame:
    """The snapshot rows of ``dataset`` (optionally of one scope), sorted by their first column."""
    table = sa.Table(f"snap_{dataset}", sa.MetaData(), autoload_with=store.engine)
    query = sa.select(table)
    if scope is not None:
        query = query.where(table.c.scope == scope)
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return frame.sort_values(frame.columns[0]).reset_index(drop=True)


def flaky_tolerant(robot: str | RobotSpec, threshold: int = 5) -> RobotSpec:
    """``robot`` on a system that locks after ``threshold`` wrong passwords instead of three.

    Tests that inject random 500s hit the login POST too, and with three a single unanswered
    login leaves no margin for another (the session parks rather than risk a lockout).
    """
    spec = registered()[robot] if isinstance(robot, str) else robot
    return dataclasses.replace(spec, system=dataclasses.replace(spec.system, lockout_threshold=threshold))


def spawn_run(robot: str, account: str) -> subprocess.Popen[bytes]:
    """``harvest run ROBOT --account ACCOUNT`` as a child in a process group of its own, for killing."""
    return subprocess.Popen(
        [str(HARVEST), "run", robot, "--account", account],
        cwd=REPO,
        env=os.environ.copy(),
        start_new_session=True,  # its own process group: one SIGKILL takes Python and Playwright's driver
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def manual_run(robot: str, account: str, **env: str) -> subprocess.Popen[str]:
    """``harvest run ROBOT --account ACCOUNT`` as an operator starts it, its output (wide) in ``stdout``."""
    return subprocess.Popen(
        [str(HARVEST), "run", robot, "--account", account],
        env=os.environ | {"COLUMNS": "250", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
