"""A login form that a browser login showed to be plain is sent over HTTP next time, without Chromium.

Every sandbox shape's login posts differently (a form to its own URL, to another, ASP.NET's view
state and named submit button, layui's JSON by XHR): each is learned from one browser login and
replayed after the session ended, and the replay is judged and counted as the browser's login is.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from robots.runtime import Harvester, RobotSpec, RunReport, discover, run_blocking
from sandbox import SPECS, Sandbox
from settings import Settings
from store import Store
from vault import Vault

pytestmark = pytest.mark.browser

ACCOUNT = 0


def _robot_of(code: str) -> RobotSpec:
    return next(spec for spec in discover().values() if spec.system.name == code)


def _runs(settings: Settings, store: Store, vault: Vault, robot: RobotSpec, account: str, n: int = 1):
    """``n`` runs in one Harvester; the reports and how often Chromium was launched."""

    async def go() -> tuple[list[RunReport], int]:
        async with Harvester(settings, store, vault) as harvester:
            reports = [await harvester.run(robot, account) for _ in range(n)]
            return reports, harvester.chromium.launches

    return run_blocking(go)


@pytest.mark.parametrize("code", [spec.code for spec in SPECS])
def test_a_login_learned_in_the_browser_is_replayed_without_it(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, code: str
) -> None:
    system, robot = sandbox[code], _robot_of(code)
    account = system.accounts[ACCOUNT]

    (first,), launches = _runs(settings, store, vault, robot, account.account)
    assert first.status == "ok" and first.logins == 1 and launches == 1, first.message
    recipe = vault.login_recipes(code, account.account).load()
    assert recipe is not None, "the browser login taught nothing"
    kept = json.dumps(recipe, ensure_ascii=False)
    assert account.password not in kept and account.username not in kept
    assert vault.get(code, account.account).logs_in_by == "http"

    system.gate.end_sessions(account.username)  # overnight: the saved session is gone
    browser_agent = system.traffic.requests[-1].user_agent
    (second,), launches = _runs(settings, store, vault, robot, account.account)

    assert second.status == "ok" and second.logins == 1, second.message
    assert launches == 0, "the replayed login started Chromium"
    assert second.records == first.records
    logins = [a for a in system.gate.attempts if a.username == account.username]
    assert [a.outcome for a in logins] == ["ok", "ok"]
    assert {r.user_agent for r in system.traffic.requests} == {browser_agent}


def _end_sessions(sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    system.gate.end_sessions(system.accounts[ACCOUNT].username)


def test_a_page_whose_script_hashes_the_password_teaches_nothing(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system, robot = sandbox["population"], _robot_of("population")
    account = system.accounts[ACCOUNT]
    system.switches.hashed_password = True  # what the POST carries is not what was typed

    (first,), _ = _runs(settings, store, vault, robot, account.account)
    assert first.status == "ok", first.message
    assert vault.login_recipes("population", account.account).load() is None
    _end_sessions(sandbox, "population")
    (second,), launches = _runs(settings, store, vault, robot, account.account)

    assert second.status == "ok" and second.logins == 1 and launches == 1, second.message
    assert system.gate.wrong_passwords(account.username) == 0


def test_a_login_page_that_changed_is_left_to_the_browser_which_learns_it_again(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system, robot = sandbox["civil"], _robot_of("civil")
    account = system.accounts[ACCOUNT]
    _runs(settings, store, vault, robot, account.account)
    _end_sessions(sandbox, "civil")
    system.switches.captcha = True  # the page has a field the recipe does not know

    (changed,), launches = _runs(settings, store, vault, robot, account.account)
    assert changed.status == "ok" and launches == 1, changed.message
    recipe = vault.login_recipes("civil", account.account).load()
    assert recipe is not None and "captcha" in {role for _, role, _ in recipe["fields"]}
    _end_sessions(sandbox, "civil")
    (again,), launches = _runs(settings, store, vault, robot, account.account)

    assert again.status == "ok" and launches == 0, again.message  # the captcha read over HTTP too
    assert system.gate.wrong_passwords(account.username) == 0
    assert {a.outcome for a in system.gate.attempts} <= {"ok", "bad_captcha"}


def test_a_refused_replay_parks_keeps_the_answer_and_forgets_the_recipe(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    system, robot = sandbox["disability"], _robot_of("disability")
    account = system.accounts[ACCOUNT]
    _runs(settings, store, vault, robot, account.account)
    _end_sessions(sandbox, "disability")
    # Someone changed the password in the system itself: the vault's is wrong now.
    changed = dataclasses.replace(account, password="Changed-elsewhere-1")
    monkeypatch.setitem(system.gate.accounts, account.username, changed)

    (report,), launches = _runs(settings, store, vault, robot, account.account)

    assert (report.status, report.kind, launches) == ("parked", "bad_credentials", 0), report.message
    assert system.gate.wrong_passwords(account.username) == 1
    assert vault.login_recipes("disability", account.account).load() is None
    assert vault.get("disability", account.account).logs_in_by == "browser"
    answer = (Path(report.artifacts or "") / "login.html").read_text(encoding="utf-8")
    assert "密码" in answer  # the GBK page, kept readable
    assert account.password not in answer


def test_a_login_page_that_is_gone_is_left_to_the_browser_which_says_so_and_sends_nothing(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system, robot = sandbox["population"], _robot_of("population")
    account = system.accounts[ACCOUNT]
    _runs(settings, store, vault, robot, account.account)
    _end_sessions(sandbox, "population")
    system.reset()
    # The system moved its login page: the address the robot knows answers 404.
    login = dataclasses.replace(robot.system.login, path="/login-moved")
    moved = dataclasses.replace(robot, system=dataclasses.replace(robot.system, login=login))

    (report,), launches = _runs(settings, store, vault, moved, account.account)

    assert (report.status, report.kind, launches) == ("failed", "layout_changed", 1), report.message
    assert "未发送任何内容" in report.message
    assert list(system.gate.attempts) == []
