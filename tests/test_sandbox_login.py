"""Every sandbox system's front door behaves like a real one (real Chromium, real HTTP)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox import Sandbox
from tests.sandbox_helpers import captcha_answer, login

pytestmark = pytest.mark.browser
SYSTEMS = ["population", "civil", "market"]


@pytest.mark.parametrize("code", SYSTEMS)
def test_login_lands_on_the_home_page_as_the_account(page: Page, sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    account = system.accounts[0]
    login(page, system, account.username, account.password)
    assert page.url.endswith(system.spec.home)
    expect(page.locator("#current-user")).to_contain_text(account.username)
    expect(page.locator("#current-user")).to_contain_text(account.scope_name)


@pytest.mark.parametrize("code", SYSTEMS)
def test_three_wrong_passwords_lock_the_account_with_a_distinct_message(
    page: Page, sandbox: Sandbox, code: str
) -> None:
    system = sandbox[code]
    account = system.accounts[1]
    messages = []
    for _ in range(3):
        login(page, system, account.username, "wrong-password")
        messages.append(page.locator("#login-error").inner_text())
    assert "用户名或密码错误" in messages[0] and "2" in messages[0]
    assert "用户名或密码错误" in messages[1] and "锁定" not in messages[1]
    assert "账号已锁定" in messages[2]
    # Locked means locked: even the right password is refused, with the lock message.
    login(page, system, account.username, account.password)
    expect(page.locator("#login-error")).to_contain_text("账号已锁定")
    assert system.gate.is_locked(account.username)
    assert system.gate.wrong_passwords(account.username) == 3


@pytest.mark.parametrize("code", SYSTEMS)
def test_a_wrong_captcha_is_distinct_from_a_wrong_password(page: Page, sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    system.switches.captcha = True
    account = system.accounts[0]
    page.goto(f"{system.url}/login")
    expect(page.locator("#captcha-img")).to_be_visible()

    login(page, system, account.username, account.password, captcha="????")
    expect(page.locator("#login-error")).to_have_text("验证码错误，请重新输入")
    assert system.gate.wrong_passwords(account.username) == 0

    page.fill("#password", "wrong-password")
    page.fill("#captcha", captcha_answer(page, system))
    page.click("#login-button")
    expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")

    page.fill("#password", account.password)
    page.fill("#captcha", captcha_answer(page, system).lower())
    page.click("#login-button")
    expect(page.locator("#current-user")).to_contain_text(account.username)
    assert system.gate.wrong_passwords(account.username) == 1


@pytest.mark.parametrize("code", SYSTEMS)
def test_an_idle_session_expires_to_the_login_page(page: Page, sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    system.switches.idle_timeout_s = 0.5
    account = system.accounts[0]
    login(page, system, account.username, account.password)
    expect(page.locator("#current-user")).to_be_visible()
    time.sleep(0.8)
    page.reload()
    assert "/login" in page.url
    expect(page.locator("#login-info")).to_have_text("会话已超时，请重新登录")


@pytest.mark.parametrize("code", SYSTEMS)
def test_a_second_login_ends_the_first_session(browser: Browser, sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    account = system.accounts[0]
    first, second = browser.new_context(), browser.new_context()
    try:
        old, new = first.new_page(), second.new_page()
        login(old, system, account.username, account.password)
        login(new, system, account.username, account.password)
        old.reload()
        assert "/login" in old.url
        expect(old.locator("#login-info")).to_contain_text("已在其他地方登录")
        new.reload()
        expect(new.locator("#current-user")).to_contain_text(account.username)
    finally:
        first.close()
        second.close()


def test_the_single_session_rule_can_be_switched_off(browser: Browser, sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.single_session = False
    account = system.accounts[0]
    contexts = [browser.new_context(), browser.new_context()]
    try:
        pages = [context.new_page() for context in contexts]
        for page in pages:
            login(page, system, account.username, account.password)
        pages[0].reload()
        expect(pages[0].locator("#current-user")).to_contain_text(account.username)
    finally:
        for context in contexts:
            context.close()


def test_logout_ends_the_session(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["population"]
    account = system.accounts[0]
    login(page, system, account.username, account.password)
    page.click("text=退出")
    expect(page.locator("#login-info")).to_have_text("您已安全退出")
    page.goto(f"{system.url}/persons")
    assert "/login" in page.url
