"""Safe login: one password attempt per run, parked accounts, captcha through OCR, saved sessions."""

from __future__ import annotations

import pytest

from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser


def test_wrong_password_is_tried_once_parks_the_account_and_is_not_tried_again(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    account = population.account("donghu")
    vault.set("population", "donghu", password="not-the-password")

    first, second = harvest(settings, store, vault, [("persons", "donghu"), ("persons", "donghu")])

    assert (first.status, first.kind, first.exit_code) == ("parked", "bad_credentials", 3)
    assert "harvest vault set population donghu --password" in first.message
    assert "用户名或密码错误" in first.message  # what the system said, for the operator
    assert population.gate.wrong_passwords(account.username) == 1
    assert not population.gate.is_locked(account.username)
    parked = vault.get("population", "donghu")
    assert (parked.status, parked.parked_kind) == ("parked", "bad_credentials")
    assert (second.status, second.kind, second.run_id) == ("parked", "bad_credentials", None)
    assert population.gate.wrong_passwords(account.username) == 1  # the second run did not try
    assert store.run(first.run_id).failure_kind == "bad_credentials"

    vault.set("population", "donghu", password=account.password)  # a person fixes it
    (third,) = harvest(settings, store, vault, [("persons", "donghu")])
    assert third.status == "ok" and third.records > 0


def test_an_account_the_system_locked_is_parked_as_locked(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    username = population.account("xiyuan").username
    population.switches.lockout_threshold = 1
    population.gate.login(population.gate.anonymous(None), username, "wrong", "", "")  # bad CSRF: no count
    session = population.gate.anonymous(None)
    population.gate.login(session, username, "wrong", session.csrf, "")  # someone else's mistake locks it

    (report,) = harvest(settings, store, vault, [("persons", "xiyuan")])

    assert (report.status, report.kind, report.exit_code) == ("parked", "locked", 3)
    assert vault.get("population", "xiyuan").parked_kind == "locked"


def test_captcha_is_read_by_ocr_with_no_wrong_password(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    population = sandbox["population"]
    population.switches.captcha = True
    account = population.account("nanshan")

    (report,) = harvest(settings, store, vault, [("persons", "nanshan")])

    assert report.status == "ok", report.message
    assert len(snapshot(store, "persons", "nanshan")) == len(population.truth("persons", account.username))
    outcomes = [a.outcome for a in population.gate.attempts if a.username == account.username]
    assert outcomes[-1] == "ok" and "bad_password" not in outcomes


def test_captcha_that_ocr_cannot_read_ends_needs_human_without_a_password_miss(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    population = sandbox["population"]
    population.switches.captcha = True
    settings = settings.model_copy(update={"captcha_attempts": 1})
    username = population.account("donghu").username
    # Every answer is wrong: the sandbox draws a new captcha for each image request, and the
    # robot's screenshot is of the image the page showed, so an extra request makes OCR miss.
    monkeypatch.setattr(population.gate, "new_captcha", _always_stale(population.gate.new_captcha))

    (report,) = harvest(settings, store, vault, [("persons", "donghu")])

    assert (report.status, report.kind, report.exit_code) == ("failed", "needs_human", 4)
    assert population.gate.wrong_passwords(username) == 0
    assert vault.get("population", "donghu").status == "ok"  # a captcha miss parks nothing


def _always_stale(draw):
    def stale(session):
        png = draw(session)
        draw(session)  # the session now expects a different answer than the image shows
        return png

    return stale


def test_a_saved_session_is_reused_by_the_next_run(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    civil = sandbox["civil"]
    username = civil.account("donghu").username
    harvest(settings, store, vault, [("elderly", "donghu")])
    (again,) = harvest(settings, store, vault, [("elderly", "donghu")])  # a new process, in effect

    assert again.status == "ok" and again.logins == 0
    logins = [e for e in civil.gate.events if e.username == username and e.event == "login"]
    assert len(logins) == 1
    assert again.unchanged == again.records and again.new == 0
