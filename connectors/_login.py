"""One login attempt through a system's form, classified by what the system answered.

The policy around attempts (never retry a rejected password, park the account, how many
captchas to read) lives in ``Session.login``; this module only fills, submits and reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import pyotp
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from connectors._captcha import SolverChain
from connectors._errors import NeedsHuman
from connectors._polite import Polite
from connectors._system import FormLogin, LoginOutcome, System


class Revealable(Protocol):
    """A secret that shows its value only when asked (the vault's ``Secret``)."""

    def reveal(self) -> str: ...


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Revealable
    totp_seed: Revealable | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


@dataclass
class LoginAttempt:
    """Everything one login attempt may use; a custom login function receives this."""

    page: Page
    system: System
    credentials: Credentials
    solver: SolverChain
    polite: Polite
    message: str = ""  # what the system said, for the run's failure message
    submitted: bool = False  # a password went to the system (a custom login must set it too)

    def totp(self) -> str | None:
        seed = self.credentials.totp_seed
        if seed is None:
            return None
        try:
            return pyotp.TOTP(seed.reveal()).now()
        except (ValueError, TypeError) as exc:  # not base32, or too short for pyotp: never print it
            raise NeedsHuman(
                f"the TOTP seed of {self.system.name}/{self.credentials.username} is not usable "
                f"({type(exc).__name__}); set the right one with `harvest vault set ... --totp`"
            ) from None


async def form_login(attempt: LoginAttempt) -> LoginOutcome:
    """Fill and submit the form once; ``needs_human`` if a captcha could not be read."""
    page, system = attempt.page, attempt.system
    form = system.login
    assert isinstance(form, FormLogin)
    await attempt.polite.fetch(lambda: page.goto(system.url(form.path)), "the login page")
    await page.fill(form.username, attempt.credentials.username)
    await page.fill(form.password, attempt.credentials.password.reveal())
    if system.captcha == "image" and await page.locator(form.captcha_input).is_visible():
        picture = page.locator(form.captcha_image)
        await picture.evaluate("img => img.decode ? img.decode().catch(() => null) : null")  # loaded
        answer = await attempt.solver.solve(await picture.screenshot())
        if answer is None:
            attempt.message = "the captcha could not be read by OCR and no person answered it"
            return "needs_human"
        if not answer:
            attempt.message = "OCR read nothing in the captcha"
            return "bad_captcha"  # not submitted: a fresh image, no password spent
        await page.fill(form.captcha_input, answer)
    code = attempt.totp()
    if code is not None and await page.locator(form.totp_input).is_visible():
        await page.fill(form.totp_input, code)
    attempt.submitted = True
    try:
        async with attempt.polite.slot(), page.expect_navigation() as navigation:
            await page.click(form.submit)
        reply = await navigation.value
    except PlaywrightError as exc:  # dropped or timed out: we cannot know if the system judged it
        attempt.message = str(exc).splitlines()[0]
        return "system_unavailable"
    if reply is not None and reply.status >= 500:
        attempt.message = f"the login form answered HTTP {reply.status}"
        return "system_unavailable"
    if urlsplit(page.url).path != form.path:
        return "ok"  # the form let us through; the session confirms it on a logged-in page
    return await _classify(page, form, attempt)


async def _classify(page: Page, form: FormLogin, attempt: LoginAttempt) -> LoginOutcome:
    errors = page.locator(form.error)
    text = " ".join(await errors.all_inner_texts()) if await errors.count() else ""
    if not text:
        text = (await page.inner_text("body"))[:200]
    attempt.message = " ".join(text.split())
    for outcome, needles in form.messages.items():
        if any(needle.lower() in text.lower() for needle in needles):
            return outcome
    return "unknown"
