"""What gridharvest needs to know about one vertical system, declared once as data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from connectors._login import LoginAttempt

LoginOutcome = Literal[
    "ok", "bad_credentials", "bad_captcha", "locked", "system_unavailable", "needs_human", "unknown"
]

# What the systems' login pages say, by outcome; matched as substrings of the error text.
MESSAGES: Mapping[LoginOutcome, tuple[str, ...]] = {
    "locked": ("锁定", "冻结", "locked"),
    "bad_captcha": ("验证码",),
    "bad_credentials": ("密码错误", "用户名或密码", "用户不存在", "账号或密码", "password"),
    "system_unavailable": ("系统繁忙", "服务不可用", "稍后再试"),
}


@dataclass(frozen=True)
class FormLogin:
    """A login form, by CSS selectors; the defaults fit the common 用户名/密码/验证码 form."""

    path: str = "/login"
    username: str = "#username"
    password: str = "#password"
    submit: str = "button[type=submit]"
    captcha_input: str = "#captcha"
    captcha_image: str = "#captcha-img"
    totp_input: str = "#otp"
    error: str = ".alert-error, .error, .el-message--error"
    messages: Mapping[LoginOutcome, tuple[str, ...]] = field(default_factory=lambda: dict(MESSAGES))


# A custom login: given the login attempt (page, credentials, captcha solver), do the
# system's own steps and return how it went.
CustomLogin = Callable[["LoginAttempt"], Awaitable[LoginOutcome]]


@dataclass(frozen=True)
class Politeness:
    """How hard one process may press one system, across all its accounts, retries included."""

    concurrency: int = 2  # requests in flight at once
    sessions: int = 2  # accounts harvesting at once (the scheduler holds to it)
    rate: float = 5.0  # requests started per second
    hours: tuple[int, int] | None = None  # local hours [start, end) when runs may start; None: any time
    retries: int = 5  # per request, for 5xx, timeouts, dropped connections and 429

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
    lockout_threshold: int = 3  # wrong passwords that lock the account on the system's side
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
