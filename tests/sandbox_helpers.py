"""Small helpers the sandbox tests share: logging in through the real login form."""

from __future__ import annotations

from playwright.sync_api import Page

from sandbox import SandboxSystem


def login(page: Page, system: SandboxSystem, username: str, password: str, captcha: str = "") -> None:
    """Fill and submit the login form as a person would; the caller checks where it lands."""
    page.goto(f"{system.url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    if captcha:
        page.fill("#captcha", captcha)
    page.click("#login-button")
    page.wait_for_load_state()


def session_token(page: Page, system: SandboxSystem) -> str:
    """The system's session cookie as the browser holds it."""
    for cookie in page.context.cookies(system.url):
        if cookie["name"] == system.spec.cookie_name:
            return cookie["value"]
    raise AssertionError(f"no {system.spec.cookie_name} cookie for {system.url}")


def captcha_answer(page: Page, system: SandboxSystem) -> str:
    """What the captcha image now shown to this browser says (read from the sandbox's side)."""
    page.wait_for_load_state()  # the image request is what draws a new captcha
    session = system.gate.sessions[session_token(page, system)]
    assert session.captcha is not None, "the login page showed no captcha image"
    return session.captcha.answer
