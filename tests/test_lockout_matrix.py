"""The lockout matrix: on every sandbox system, whatever goes wrong at login, ten runs in a row
never cost the account more than one failed password check, and never lock it.

The systems differ in every way a login can (form markup, where and how errors show, toasts,
``alert()`` dialogs, HTTP statuses, captcha styles), and one row speaks in texts no framework
has seen: the guarantee is the invariant in ``connectors/_session.py``, not a list of texts.
Each answer is tried on every system whose login reaches it by a path of its own (``SAME_PATH``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from robots.runtime import Harvester, RobotSpec, discover, run_blocking
from sandbox import SPECS, Sandbox, SandboxSystem
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest
from vault import Vault

pytestmark = pytest.mark.browser

RUNS = 10
ACCOUNT = 0  # the first community's account of each system


def _wrong_password(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.set(system.code, system.accounts[ACCOUNT].account, password="Not-the-password-1")


def _unfamiliar_text(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    system.switches.unfamiliar_texts = True
    _wrong_password(system, vault, monkeypatch)


def _login_500(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    system.switches.login_fault = "500"
    _wrong_password(system, vault, monkeypatch)


def _login_drop(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    system.switches.login_fault = "drop"
    _wrong_password(system, vault, monkeypatch)


def _captcha_miss(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    system.switches.captcha = True
    draw = system.gate.new_captcha

    def stale(session):  # the image shown is never the answer expected
        png = draw(session)
        draw(session)
        return png

    monkeypatch.setattr(system.gate, "new_captcha", stale)


def _locked(system: SandboxSystem, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    username = system.accounts[ACCOUNT].username
    threshold = system.switches.lockout_threshold
    for _ in range(threshold):  # someone else's mistakes, before our runs
        session = system.gate.anonymous(None)
        system.gate.login(session, username, "someone-else's-typo", session.csrf, "")
    assert system.gate.is_locked(username)
    system.gate.attempts.clear()  # count only what our runs do


Setup = Callable[[SandboxSystem, Vault, pytest.MonkeyPatch], None]
ROWS: dict[str, tuple[Setup, str]] = {
    "wrong password": (_wrong_password, "bad_credentials"),
    "a wrong-password text never seen": (_unfamiliar_text, "needs_human"),
    "5xx on the login POST": (_login_500, "system_unavailable"),
    "dropped connection on the login POST": (_login_drop, "system_unavailable"),
    "captcha miss": (_captcha_miss, "needs_human"),
    "locked account": (_locked, "locked"),
}
# A system whose login door is another's, page for page (form, texts, statuses, captcha): the
# matrix tries the other one. ``test_a_system_left_out_has_the_door_it_stands_for`` keeps it true.
SAME_DOOR = {"market": "civil"}
# Per answer, the systems that reach it by the same path as one the row keeps. The doors differ in
# the form (population's button declared, civil's found; health's own field names; assist's layui
# form without a <form>, answered by XHR in a toast; disability's ASP.NET page with alert() dialogs),
# in their words, statuses (health answers a lock with 429) and captchas. The vendor codes of an
# unfamiliar text are the same on every system, and so is the sandbox's answer to a faulty login
# POST: the fault rows keep one system for each way a login POST travels, a navigation to the login
# page's own URL (the common form; disability's goes there too), to another URL (health), an XHR.
SAME_PATH: dict[str, set[str]] = {
    "a wrong-password text never seen": {"population"},
    "5xx on the login POST": {"civil", "disability"},
    "dropped connection on the login POST": {"population", "disability"},
    "captcha miss": {"civil"},
    "locked account": {"population"},
}
CASES = [
    (spec.code, row)
    for row in ROWS
    for spec in SPECS
    if spec.code not in SAME_DOOR and spec.code not in SAME_PATH.get(row, set())
]


def _robot_of(code: str) -> RobotSpec:
    return next(spec for spec in discover().values() if spec.system.name == code)


def _learned(settings: Settings, store: Store, vault: Vault, system: SandboxSystem, *, captcha: bool) -> dict:
    """One good run, whose browser login shows how the form posts; then the session ends overnight."""
    account = system.accounts[ACCOUNT]
    system.switches.captcha = captcha
    (report,) = harvest(settings, store, vault, [(_robot_of(system.code), account.account)])
    assert report.status == "ok", report.message
    recipe = vault.login_recipes(system.code, account.account).load()
    assert recipe is not None, "the browser login taught nothing"
    system.reset()  # sessions, attempts and history: only what the matrix's runs do counts
    return recipe


def _runs(settings: Settings, store: Store, vault: Vault, robot: RobotSpec, account: str) -> tuple[list, int]:
    """``RUNS`` runs in one Harvester, and how often it started Chromium."""

    async def go() -> tuple[list, int]:
        async with Harvester(settings, store, vault) as harvester:
            reports = [await harvester.run(robot, account) for _ in range(RUNS)]
            return reports, harvester.chromium.launches

    return run_blocking(go)


# "replayed": a browser login on the system showed how its form posts, and every login of the ten
# runs is sent over HTTP by that recipe (``connectors/_recipe.py``), judged and counted alike.
@pytest.mark.parametrize("transport", ["browser", "replayed"])
@pytest.mark.parametrize(("code", "row"), CASES)
def test_ten_runs_cost_at_most_one_failed_password_check(
    settings: Settings,
    store: Store,
    vault: Vault,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    row: str,
    transport: str,
) -> None:
    system = sandbox[code]
    account = system.accounts[ACCOUNT]
    setup, first_kind = ROWS[row]
    learned = (
        _learned(settings, store, vault, system, captcha=row == "captcha miss")
        if transport == "replayed"
        else None
    )
    setup(system, vault, monkeypatch)
    if learned is not None:  # the vault's password is another now, not the form: what it posts is as learned
        vault.login_recipes(code, account.account).keep(learned)
    settings = settings.model_copy(update={"captcha_attempts": 1})

    reports, launches = _runs(settings, store, vault, _robot_of(code), account.account)

    assert system.gate.wrong_passwords(account.username) <= 1, [r.message for r in reports]
    assert learned is None or launches == 0, "a replayed login started Chromium"
    if row != "locked account":
        assert not system.gate.is_locked(account.username)
    assert reports[0].kind == first_kind, reports[0].message
    assert all(r.status != "ok" for r in reports)
    if row == "captcha miss":  # nothing spent, nothing parked: only a person can read it
        assert vault.get(code, account.account).status == "ok"
    else:
        assert vault.get(code, account.account).status == "parked"
        assert all(r.run_id is None for r in reports[2:]), "a parked account was tried again"


@pytest.mark.parametrize(("left_out", "tried"), SAME_DOOR.items())
def test_a_system_left_out_has_the_door_it_stands_for(left_out: str, tried: str) -> None:
    specs = {spec.code: spec for spec in SPECS}
    door = ("wording", "captcha_style", "login_page", "login_post", "standard_login")
    assert [getattr(specs[left_out], part) for part in door] == [getattr(specs[tried], part) for part in door]
    declared = ("login", "captcha", "lockout_threshold")
    left, kept = _robot_of(left_out).system, _robot_of(tried).system
    assert [getattr(left, part) for part in declared] == [getattr(kept, part) for part in declared]


def test_an_unrecognised_answer_parks_with_the_login_page_as_evidence(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = sandbox["population"]
    _unfamiliar_text(system, vault, monkeypatch)

    (report,) = harvest(settings, store, vault, [(_robot_of("population"), "donghu")])

    assert (report.status, report.kind) == ("parked", "needs_human")
    assert "E1027" in report.message and "已停用" in report.message
    folder = Path(report.artifacts or "")
    assert (folder / "login.png").stat().st_size > 0
    assert "E1027" in (folder / "login.html").read_text(encoding="utf-8")


def test_unanswered_logins_are_counted_across_runs_and_reset_by_a_good_login(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["civil"]
    robot = _robot_of("civil")
    system.switches.login_fault = "500"

    (first,) = harvest(settings, store, vault, [(robot, "donghu")])  # one Harvester (process) ...
    assert first.kind == "system_unavailable" and vault.get("civil", "donghu").unconfirmed_logins == 1
    (second,) = harvest(settings, store, vault, [(robot, "donghu")])  # ... and the next one
    assert (second.status, second.kind) == ("parked", "needs_human")
    assert "有 1 次登录没有得到答复" in second.message
    assert len([a for a in system.gate.attempts if a.username == system.accounts[0].username]) == 1

    system.switches.login_fault = ""
    vault.set("civil", "donghu", password=system.account("donghu").password)  # a person checked
    (third,) = harvest(settings, store, vault, [(robot, "donghu")])
    assert third.status == "ok", third.message
    assert vault.get("civil", "donghu").unconfirmed_logins == 0


def test_a_login_form_that_is_not_there_fails_fast_and_sends_nothing(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    robot = _robot_of("population")
    missing = dataclasses.replace(
        robot.system, login=dataclasses.replace(robot.system.login, username="#no-such-input")
    )
    (report,) = harvest(settings, store, vault, [(dataclasses.replace(robot, system=missing), "donghu")])

    assert (report.status, report.kind) == ("failed", "layout_changed")
    assert "#no-such-input" in report.message and "未发送任何内容" in report.message
    assert list(sandbox["population"].gate.attempts) == []


def test_kicked_out_twice_in_one_run_stops_instead_of_taking_the_session_back(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_runtime_faults import HOOKS

    system = sandbox["population"]
    username = system.account("nanshan").username
    for page in (2, 4):  # a colleague logs in with the same account, twice
        HOOKS[page] = lambda: system.gate.end_sessions(username, "kicked")

    (report,) = harvest(settings, store, vault, [("t_pages20", "nanshan")])

    assert (report.status, report.kind) == ("failed", "needs_human"), report.message
    assert "有人正在使用" in report.message and report.logins == 2
    kicked = [e for e in system.gate.events if e.username == username and e.event == "kicked"]
    assert len(kicked) == 2  # ours: we ended nobody's session a second time
    assert vault.get("population", "nanshan").status == "ok"  # nothing wrong with the password
