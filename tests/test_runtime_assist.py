"""The 社会救助 demo robot harvests exactly each account's records from a layui admin it was never
told about: a scripted login with toasts, an optional captcha, 500s, and a session ended mid-walk
that the API reports as ``{"code": 1001}`` inside an HTTP 200."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pandas as pd
import pytest

from connectors.sandbox_assist import assist
from robots import Walk, robot
from robots.runtime import discover
from sandbox import Sandbox, generate_world
from settings import Settings
from store import Store
from tests.runtime_helpers import flaky_tolerant, harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
ACCOUNTS = ("donghu", "xiyuan")
HOOKS: list[Callable[[], None]] = []  # run when the walk yields its first row (page 1 read, page 2 not yet)

DEMO = discover()["assistance"]  # declared in robots/sandbox_assist.toml
Assistance, demo_walk = DEMO.record, DEMO.walk


@robot(system=assist, record=Assistance, dataset="assistance", name="t_assist_hooked")
async def hooked(walk: Walk):
    """The demo walk, with a test hook between its first page and the rest."""
    async for row in demo_walk(walk):
        while HOOKS:
            HOOKS.pop()()
        yield row


@pytest.fixture(scope="module")
def _big_sandbox() -> Iterator[Sandbox]:
    # Larger than the session's world, so each account has several API pages of 50.
    with Sandbox(generate_world(seed=11, persons=4000, communities=2)) as box:
        yield box


@pytest.fixture
def sandbox(_big_sandbox: Sandbox) -> Iterator[Sandbox]:
    """This module's sandbox (the settings and vault fixtures follow it), clean for each test."""
    for system in _big_sandbox.systems.values():
        system.reset()
    yield _big_sandbox
    for system in _big_sandbox.systems.values():
        system.reset()


def _plain(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in values]


def _assert_exactly_the_truth(store: Store, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    for scope in ACCOUNTS:
        truth = system.truth("assistance", system.account(scope).username)
        got = snapshot(store, "assistance", scope).set_index("cert_no").loc[truth["cert_no"]].reset_index()
        assert len(snapshot(store, "assistance", scope)) == len(truth) > 50  # several pages each
        assert (got["community"] == scope).all()
        assert list(got["id_number"]) == list(truth["id_number"])
        assert [Decimal(str(v)) for v in got["monthly_amount"]] == list(truth["monthly_amount"])
        assert list(pd.to_datetime(got["approved_at"]).dt.strftime("%Y-%m-%d")) == list(truth["approved_at"])
        assert _plain(got["phone"]) == _plain(truth["phone"])  # 暂无 in the API is no phone
        for column in ("name", "category", "members", "address", "status"):
            assert list(got[column].astype(str)) == list(truth[column].astype(str)), column


def test_the_demo_robot_harvests_exactly_each_accounts_records(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    reports = harvest(settings, store, vault, [("assistance", scope) for scope in ACCOUNTS])
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    _assert_exactly_the_truth(store, sandbox)


def test_the_demo_robot_clears_the_captcha(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["assist"]
    system.switches.captcha = True
    reports = harvest(settings, store, vault, [("assistance", scope) for scope in ACCOUNTS])
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    _assert_exactly_the_truth(store, sandbox)
    assert system.gate.wrong_passwords(system.account(ACCOUNTS[0]).username) == 0


def test_500s_and_a_session_ended_mid_walk_lose_nothing(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["assist"]
    system.switches.fault_500_rate, system.switches.lockout_threshold = 0.1, 5
    username = system.account(ACCOUNTS[0]).username
    HOOKS.append(lambda: system.gate.end_sessions(username))  # as an idle timeout would
    plan = [(flaky_tolerant("t_assist_hooked"), ACCOUNTS[0]), (flaky_tolerant("assistance"), ACCOUNTS[1])]
    reports = harvest(settings, store, vault, plan)
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    _assert_exactly_the_truth(store, sandbox)
    events = [e.event for e in system.gate.events if e.username == username]
    assert events[:3] == ["login", "expired", "login"]  # the walk met code 1001 and logged in again
    assert system.traffic.faults["500"] > 0
    assert not HOOKS
