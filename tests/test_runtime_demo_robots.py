"""Every demo robot harvests exactly what each demo account may see, and nothing of another community."""

from __future__ import annotations

import pandas as pd
import pytest

from robots.runtime import discover
from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
DEMO = {name: spec for name, spec in discover().items() if spec.module.startswith("robots.sandbox_")}


def test_there_is_a_demo_robot_for_every_sandbox_dataset(sandbox: Sandbox) -> None:
    datasets = {(s.code, d.name) for s in sandbox.systems.values() for d in s.spec.datasets}
    assert {(r.system.name, r.dataset) for r in DEMO.values()} == datasets


def test_demo_robots_harvest_exactly_each_accounts_records(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    plan = [(robot, a.account) for robot in DEMO.values() for a in sandbox[robot.system.name].accounts]
    reports = harvest(settings, store, vault, plan)
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * len(plan), [r.message for r in reports]
    for robot in DEMO.values():
        system = sandbox[robot.system.name]
        key = next(d.key for d in system.spec.datasets if d.name == robot.dataset)
        everything = snapshot(store, robot.dataset)
        for account in system.accounts:
            truth = system.truth(robot.dataset, account.username).sort_values(key).reset_index(drop=True)
            got = everything[everything["scope"] == account.scope].reset_index(drop=True)
            assert len(got) == len(truth) > 0, (robot.name, account.account)
            fields = [f for f in robot.record.model_fields if f in truth.columns]
            assert set(fields) >= {key, "community"}
            assert (got["community"] == account.scope).all()
            pd.testing.assert_frame_equal(_text(got[fields]), _text(truth[fields]), check_dtype=False)
    by_run = {r.run_id: r for r in reports}
    assert all(r.records == r.new for r in by_run.values())  # a first harvest: every record is new


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    # Missing values are None, NaN or "" depending on the column's type and pandas' version.
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    return text.replace({"None": ""}).reset_index(drop=True)
