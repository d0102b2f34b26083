"""The demo robot of 基本公共卫生服务管理系统 harvests exactly each account's 家庭医生签约 records, through
a real Harvester: plain, behind its captcha, and through 500s and a session ended mid-walk."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pandas as pd
import pytest

from robots import Walk
from robots.runtime import RobotSpec, discover
from sandbox import Sandbox, SandboxSystem
from settings import Settings
from store import Store
from tests.runtime_helpers import flaky_tolerant, harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
COMMUNITIES = ("donghu", "xiyuan")


def _demo() -> RobotSpec:
    return discover()["family_doctor"]


def _assert_harvested_the_truth(store: Store, system: SandboxSystem, robot: RobotSpec) -> None:
    fields = [f for f in robot.record.model_fields if f != "community"]
    for community in COMMUNITIES:
        truth = system.truth("family_doctor", system.account(community).username)
        got = snapshot(store, "family_doctor", community)
        assert (got["community"] == community).all()
        pd.testing.assert_frame_equal(_comparable(got, fields), _comparable(truth, fields))


def _comparable(frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Values as text, sorted by key; money as a Decimal, so 1200.0 and 1200.00 compare equal."""
    chosen = frame[fields]
    out = chosen.astype(object).where(chosen.notna(), "").astype(str).replace({"None": ""})
    out["fee"] = frame["fee"].map(lambda v: Decimal(str(v)))
    return out.sort_values("sign_no").reset_index(drop=True)


def test_the_demo_robot_harvests_exactly_each_accounts_records(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    robot = _demo()
    reports = harvest(settings, store, vault, [(robot, community) for community in COMMUNITIES])
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    _assert_harvested_the_truth(store, sandbox["health"], robot)


def test_behind_the_captcha_the_demo_robot_harvests_the_same(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["health"]
    system.switches.captcha = True
    robot = _demo()
    reports = harvest(settings, store, vault, [(robot, community) for community in COMMUNITIES])
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    assert all(a.outcome != "bad_password" for a in system.gate.attempts)
    _assert_harvested_the_truth(store, system, robot)


def test_through_500s_and_a_session_ended_mid_walk_the_demo_robot_harvests_the_same(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["health"]
    robot = flaky_tolerant(_demo())
    plan = [(_ending_the_session_after_the_first_row(robot, system, c), c) for c in COMMUNITIES]
    system.switches.fault_500_rate, system.switches.lockout_threshold = 0.1, 5
    reports = harvest(settings, store, vault, plan)
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    assert system.traffic.faults["500"] > 0
    assert all(r.logins == 2 for r in reports)
    _assert_harvested_the_truth(store, system, robot)


def _ending_the_session_after_the_first_row(
    robot: RobotSpec, system: SandboxSystem, community: str
) -> RobotSpec:
    """The demo robot, but the system expires its session once the first row is read."""
    username = system.account(community).username

    async def walk(w: Walk):
        ended = False
        async for row in robot.walk(w):
            if not ended:
                ended = bool(system.gate.end_sessions(username, "expired"))
            yield row

    return dataclasses.replace(robot, walk=walk)
