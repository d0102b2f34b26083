"""What gridharvest needs to know about one vertical system, declared once as data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from connectors._login import LoginAttempt

LoginOutcome = Literal[
    "ok",  # the system showed the declared logged-in proof
    "bad_credentials",  # it said the user name or password is wrong
    "bad_captcha",  # it said the captcha was wrong: the only answer after which a password is sent again
    "locked",  # it said the account is locked or frozen, or answered 429
    "system_unavailable",  # 5xx, a dropped connection or a time-out: spent, but not explained
    "needs_human",  # nothing was sent: a captcha nobody could read, a step only a person can do
    "unknown",  # spent, and the answer is nothing we recognise: the account is parked
]


@dataclass(frozen=True)
class FormLogin:
    """A login form. Every selector is optional: without one, the form is found by its password field.

    ``username`` is then the text input before the password field, ``submit`` the form's submit
    button (or a button saying 登录), the captcha an image whose name says captcha/验证码 with the
    input beside it. What the system shows after submitting is read wherever it appears (new text,
    toasts, ``alert()`` dialogs); ``error`` names one more place to read, and ``messages`` adds a
    system's own texts to the ones recognised out of the box (they never replace the rule that an
    unrecognised answer parks the account).

    Once a browser login has shown that the form posts the user name and password as typed, with
    nothing but the page's own values beside them, later logins post the same over HTTP without
    starting Chromium (``connectors/_recipe.py``); ``replay=False`` keeps every login in the browser.
    """

    path: str = "/login"
    username: str | None = None
    password: str | None = None
    submit: str | None = None
    captcha_input: str | None = None
    captcha_image: str | None = None
    totp_input: str | None = None
    error: str | None = None
    messages: Mapping[LoginOutcome, tuple[str, ...]] = field(default_factory=dict)
    replay: bool = True


# A custom login: given the login attempt (page, credentials, captcha solver), do the
# system's own steps and return how it went.
CustomLogin = Callable[["LoginAttempt"], Awaitable[LoginOutcome]]


@dataclass(frozen=True)
class Politeness:
    """How hard we may press one system, across all its accounts and every process sharing the
    database, retries included.

    ``concurrency`` and ``rate`` are ceilings: the gate starts at one request in flight and a low
    rate and finds the system's own pace below them (``connectors/_polite.py``). A run holds one of
    the system's ``slots`` (a lease in the database) and its gate gets that slot's ``share``.
    """

    concurrency: int = 8  # at most this many requests in flight at once
    sessions: int = 2  # accounts harvesting at once
    rate: float = 50.0  # at most this many requests started per second
    hours: tuple[int, int] | None = None  # local hours [start, end) when runs may start; None: any time
    retries: int = 5  # per request, for 5xx, timeouts, dropped connections and 429

    @property
    def slots(self) -> int:
        """Accounts that may harvest at once: ``sessions``, but no more than ``concurrency``, so that
        each has a request in flight of its own while all of them stay within the declaration."""
        return max(1, min(self.sessions, self.concurrency))

    def share(self, slot: int) -> Politeness:
        """What the run holding ``slot`` may use: an equal part of the rate and of the concurrency,
        the concurrency's remainder to the first slots (the ones a lone run takes), so the slots
        held at once, in any process, add up to the declaration and never more."""
        slots = self.slots
        concurrency = self.concurrency // slots + (slot < self.concurrency % slots)
        return replace(self, concurrency=concurrency, rate=self.rate / slots, sessions=1)

    def allows(self, now: dt.datetime) -> bool:
        if self.hours is None:
            return True
        start, end = self.hours
        return start <= now.hour < end if start < end else now.hour >= start or now.hour < end


@dataclass(frozen=True)
class System:
    """One vertical government system: where it is, how to log in, how politely to read it."""

    name: str
    title: str
    base_url: str
    home: str  # a page only a logged-in account can see; proves a saved session still works
    logged_in: str  # a CSS selector present only when logged in
    login: FormLogin | CustomLogin = field(default_factory=FormLogin)
    captcha: Literal["none", "image"] = "none"
    # Wrong passwords that lock the account on the system's side. Unexplained submissions (5xx,
    # drops) since the last good login are kept below ``lockout_threshold - 1``, across runs.
    lockout_threshold: int = 3
    politeness: Politeness = field(default_factory=Politeness)
    session_hours: float = 8.0  # how long a saved session is worth trying again

    @property
    def login_path(self) -> str:
        return self.login.path if isinstance(self.login, FormLogin) else "/login"

    def url(self, path: str) -> str:
        """``path`` resolved against the system's base URL (absolute URLs pass unchanged)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")
