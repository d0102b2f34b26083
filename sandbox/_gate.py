"""The login gate every sandbox system shares.

It behaves like the real systems' front doors, awkward parts included: a CSRF token
bound to a pre-login session, an optional image captcha that is single-use, lockout
after N wrong passwords, idle expiry, and a single-session rule that ends an older
session when the same account logs in again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from sandbox._accounts import DemoAccount
from sandbox._captcha import Captcha, new_captcha
from sandbox._switches import Switches

LoginOutcome = Literal["ok", "bad_password", "bad_captcha", "locked", "bad_csrf"]
EndReason = Literal["expired", "kicked", "logout"]

SWEEP_AT = 2_000  # sessions held before idle ones are swept


@dataclass(frozen=True)
class Wording:
    """What one system's login door says, and with which HTTP status; systems differ in both."""

    bad_password: str = "用户名或密码错误，还可尝试 {left} 次"
    bad_captcha: str = "验证码错误，请重新输入"
    locked: str = "账号已锁定，请 {minutes} 分钟后再试"
    bad_csrf: str = "页面已过期，请刷新后重新登录"
    rejected_status: int = 200  # a wrong password or captcha
    locked_status: int = 200


# Texts no robot framework can know in advance (the ``unfamiliar_texts`` switch): a
# vendor's own codes, with none of the usual words for password, account or failure.
UNFAMILIAR = Wording(
    bad_password="核验未通过 [E1027]，剩余机会 {left}",
    bad_captcha="输入项核验未通过 [E2003]",
    locked="暂停服务 [E4290]，{minutes} 分钟后恢复",
)
END_MESSAGES: dict[str, str] = {
    "expired": "会话已超时，请重新登录",
    "kicked": "您的账号已在其他地方登录，当前会话已失效",
    "logout": "您已安全退出",
    "login": "请先登录",
}


@dataclass
class Session:
    token: str
    serial: int
    csrf: str
    last_seen: float
    username: str | None = None
    captcha: Captcha | None = None


@dataclass(frozen=True)
class LoginAttempt:
    username: str
    outcome: LoginOutcome
    at: float


@dataclass(frozen=True)
class SessionEvent:
    username: str
    serial: int
    event: Literal["login", "expired", "kicked", "logout"]
    at: float


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    message: str = ""
    session: Session | None = None
    status: int = 200  # the HTTP status the system answers this attempt with


class LoginRequired(Exception):
    """Raised by page handlers when the caller must (re)log in; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Gate:
    accounts: dict[str, DemoAccount]
    switches: Switches
    rng: random.Random
    wording: Wording = field(default_factory=Wording)
    captcha_style: Callable[[random.Random], Captcha] = new_captcha
    clock: Callable[[], float] = time.monotonic
    sessions: dict[str, Session] = field(default_factory=dict)
    attempts: deque[LoginAttempt] = field(default_factory=lambda: deque(maxlen=10_000))
    events: deque[SessionEvent] = field(default_factory=lambda: deque(maxlen=10_000))
    _ended: dict[str, EndReason] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)
    _serial: int = 0
    _serving: Counter[str] = field(default_factory=Counter)  # requests being served, per logged-in account
    busiest: int = 0  # the most accounts with a request being served at once: accounts harvesting together

    def anonymous(self, token: str | None) -> Session:
        """The pre-login session behind ``token``, or a fresh one (it carries the CSRF token)."""
        session = self.sessions.get(token or "")
        if session is None or session.username is not None:
            session = self._new_session()
        session.last_seen = self.clock()
        return session

    def new_captcha(self, session: Session) -> bytes:
        session.captcha = self.captcha_style(self.rng)
        return session.captcha.png

    def login(self, session: Session, username: str, password: str, csrf: str, captcha: str) -> LoginResult:
        """Check one login attempt in the order real systems do: CSRF, captcha, lock, password."""
        words = self.words
        if not secrets.compare_digest(session.csrf, csrf):
            return self._record(username, LoginResult("bad_csrf", words.bad_csrf, status=403))
        if self.switches.captcha:
            expected, session.captcha = session.captcha, None  # single use, right or wrong
            if expected is None or not expected.matches(captcha):
                result = LoginResult("bad_captcha", words.bad_captcha, status=words.rejected_status)
                return self._record(username, result)
        if self.is_locked(username):
            return self._record(username, self._locked_result())
        account = self.accounts.get(username)
        if account is None or not secrets.compare_digest(self._expected(account), password):
            return self._record(username, self._wrong_password(username))
        self._failures.pop(username, None)
        return self._record(username, LoginResult("ok", session=self._authenticate(session, username)))

    def _expected(self, account: DemoAccount) -> str:
        """What the login form posts for the right password: itself, or what the page's script makes of it."""
        if self.switches.hashed_password:
            return hashlib.sha256(account.password.encode()).hexdigest()
        return account.password

    @property
    def words(self) -> Wording:
        """The wording in force: the system's own, or texts nobody has seen before."""
        return UNFAMILIAR if self.switches.unfamiliar_texts else self.wording

    def is_locked(self, username: str) -> bool:
        return self._locked_until.get(username, 0.0) > self.clock()

    def wrong_passwords(self, username: str) -> int:
        """How many wrong-password attempts the sandbox has seen for ``username``."""
        return sum(1 for a in self.attempts if a.username == username and a.outcome == "bad_password")

    def user(self, token: str | None) -> Session:
        """The logged-in session behind ``token``; raises ``LoginRequired`` with the reason if none."""
        ended = self._ended.pop(token or "", None)
        if ended is not None:
            raise LoginRequired(ended)
        session = self.sessions.get(token or "")
        if session is None or session.username is None:
            raise LoginRequired("login")
        now = self.clock()
        if now - session.last_seen > self.switches.idle_timeout_s:
            self._end(session, "expired")
            self._ended.pop(session.token, None)
            raise LoginRequired("expired")
        session.last_seen = now
        return session

    def peek_user(self, token: str | None) -> str | None:
        """Who ``token`` belongs to, without touching the session (for traffic logs)."""
        session = self.sessions.get(token or "")
        return session.username if session else None

    @contextmanager
    def serving(self, token: str | None) -> Iterator[None]:
        """Count a request of ``token``'s logged-in account as being served for the block (``busiest``)."""
        username = self.peek_user(token)
        if username is None:  # a login page, a captcha, a session already ended: no account at work
            yield
            return
        self._serving[username] += 1
        self.busiest = max(self.busiest, len(self._serving))
        try:
            yield
        finally:
            self._serving[username] -= 1
            if not self._serving[username]:
                del self._serving[username]

    def end_sessions(self, username: str, reason: EndReason = "expired") -> int:
        """End every session of ``username`` now, as an idle timeout or an administrator would."""
        ended = [s for s in self.sessions.values() if s.username == username]
        for session in ended:
            self._end(session, reason)
        return len(ended)

    def logout(self, session: Session) -> None:
        self._end(session, "logout")
        self._ended.pop(session.token, None)

    def reset(self) -> None:
        """Forget sessions, lockouts and history (tests use it between cases)."""
        self.sessions.clear()
        self._ended.clear()
        self._failures.clear()
        self._locked_until.clear()
        self.attempts.clear()
        self.events.clear()
        self.busiest = len(self._serving)  # requests still being served count on

    def _new_session(self) -> Session:
        if len(self.sessions) >= SWEEP_AT:
            self._sweep()
        self._serial += 1
        session = Session(
            token=secrets.token_urlsafe(24),
            serial=self._serial,
            csrf=secrets.token_urlsafe(16),
            last_seen=self.clock(),
        )
        self.sessions[session.token] = session
        return session

    def _sweep(self) -> None:
        """Forget idle sessions, so a long soak of login-page loads cannot grow memory without end."""
        cutoff = self.clock() - self.switches.idle_timeout_s
        for session in [s for s in self.sessions.values() if s.last_seen < cutoff]:
            if session.username is None:
                self.sessions.pop(session.token, None)
            else:
                self._end(session, "expired")

    def _authenticate(self, anonymous: Session, username: str) -> Session:
        # A fresh token on login, as real systems do against session fixation.
        self.sessions.pop(anonymous.token, None)
        if self.switches.single_session:
            for other in [s for s in self.sessions.values() if s.username == username]:
                self._end(other, "kicked")
        session = self._new_session()
        session.username = username
        self.events.append(SessionEvent(username, session.serial, "login", self.clock()))
        return session

    def _end(self, session: Session, reason: EndReason) -> None:
        self.sessions.pop(session.token, None)
        self._ended[session.token] = reason
        if len(self._ended) > 10_000:  # bounded memory under long soak runs
            self._ended.pop(next(iter(self._ended)))
        if session.username is not None:
            self.events.append(SessionEvent(session.username, session.serial, reason, self.clock()))

    def _wrong_password(self, username: str) -> LoginResult:
        failures = self._failures.get(username, 0) + 1
        self._failures[username] = failures
        left = self.switches.lockout_threshold - failures
        if left <= 0 and username in self.accounts:
            self._locked_until[username] = self.clock() + self.switches.lockout_minutes * 60
            self._failures.pop(username, None)
            return dataclasses.replace(self._locked_result(), outcome="bad_password")
        words = self.words
        return LoginResult(
            "bad_password", words.bad_password.format(left=max(left, 1)), status=words.rejected_status
        )

    def _locked_result(self) -> LoginResult:
        words = self.words
        text = words.locked.format(minutes=f"{self.switches.lockout_minutes:g}")
        return LoginResult("locked", text, status=words.locked_status)

    def _record(self, username: str, result: LoginResult) -> LoginResult:
        self.attempts.append(LoginAttempt(username, result.outcome, self.clock()))
        return result
