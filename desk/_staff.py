"""Staff accounts of the desk: Argon2id passwords, server-side sessions, login throttling.

The browser holds only a random session token; the database keeps its SHA-256, so a copy of
the database (a backup, a lost disk) opens no session. Every login outcome goes to the
store's append-only audit table, with the client's address and never a secret.

Failures lock a user NAME; a client ADDRESS is only slowed down, never locked: behind a reverse
proxy on the same host, or a community office's one NAT address, every user has the same address,
and a lock on it would lock them all out at once.

    ValueError              a bad name, role, scope or password given to add / set_password / remove
    LoginRefused            用户名或密码错误: wrong password, unknown or disabled user (all alike)
     └── LoginThrottled     a locked user name, or an address that must wait: retry after ``retry_after`` s
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Field, Session, SQLModel, select

from store import Access, Audit, Snapshot, create_tables

ROLES = ("admin", "staff")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{2,40}")
MIN_PASSWORD = 8
REFUSED = "用户名或密码错误"
TOUCH_EVERY_S = 60  # last_seen is written at most once a minute, so reading pages rarely writes
KEY_CHARS = 64  # a throttle key or audit actor keeps this much of what a client typed
CLIENT = "client:"  # throttle keys of addresses; those of names start with "user:"
MAX_CLIENT_DELAY_S = 60  # an address under attack costs a colleague behind it a minute at most

# Argon2id with the library's defaults (RFC 9106 low-memory profile); a change of defaults in a
# later argon2-cffi rehashes each password at its owner's next login.
_HASHER = PasswordHasher()


def _utc(moment: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(moment, dt.UTC)


def _seconds(value: dt.datetime) -> float:
    """SQLite hands datetimes back without their zone; every one was written in UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of: an unknown name costs the same verification as a known one."""
    return _HASHER.hash(secrets.token_urlsafe(32))


class StaffUser(SQLModel, table=True):
    """One person who may log into the desk."""

    __tablename__ = "desk_user"

    name: str = Field(primary_key=True)
    role: str  # admin / staff
    scope: str | None = None  # community code; None for an admin, who sees every community
    password_hash: str
    created_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    disabled: bool = False


class DeskSession(SQLModel, table=True):
    """One logged-in browser, known by the SHA-256 of its cookie token."""

    __tablename__ = "desk_session"

    token_hash: str = Field(primary_key=True)
    user: str = Field(index=True)
    csrf: str
    created_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    last_seen: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    client: str = ""


class LoginFailure(SQLModel, table=True):
    """Failed logins of one key ("user:<name>" or "client:<address>") since ``first_at``, and until when
    the key must wait: a name's lock, or an address's delay."""

    __tablename__ = "desk_login_failure"

    key: str = Field(primary_key=True)
    count: int = 0
    first_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    locked_until: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


@dataclass(frozen=True)
class Staffer:
    """What the web app sees of a user."""

    name: str
    role: str
    scope: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class DeskLogin:
    """A live session. The token and CSRF token stay out of repr, so a logged object shows neither."""

    token: str = field(repr=False)
    csrf: str = field(repr=False)
    user: Staffer


class LoginRefused(Exception):
    """Wrong password, unknown or disabled user: one message for all, so it tells nobody which."""

    def __init__(self, message: str = REFUSED) -> None:
        super().__init__(message)


class LoginThrottled(LoginRefused):
    """A locked user name, or an address that failed too often and must wait; the right password waits too."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        wait = (
            f"{self.retry_after} 秒" if self.retry_after < 60 else f"{math.ceil(self.retry_after / 60)} 分钟"
        )
        super().__init__(f"登录失败次数过多，请 {wait}后再试")


# The Core tables behind the models: writes go through them as single statements.
USERS: sa.Table = StaffUser.__table__  # type: ignore[attr-defined]
SESSIONS: sa.Table = DeskSession.__table__  # type: ignore[attr-defined]
FAILURES: sa.Table = LoginFailure.__table__  # type: ignore[attr-defined]


def _staffer(user: StaffUser) -> Staffer:
    return Staffer(name=user.name, role=user.role, scope=user.scope)


def check_account(name: str, role: str, scope: str | None) -> str | None:
    """Refuse a bad name, role or scope with a ValueError that names the fix; the scope, trimmed."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"用户名 {name!r} 不可用：用 2 到 40 个英文字母、数字、'_'、'.' 或 '-'")
    if role not in ROLES:
        raise ValueError(f"没有角色 {role!r}：--role 用 {'、'.join(ROLES)} 之一")
    scope = scope.strip() if scope is not None else None
    if role == "staff" and not scope:
        raise ValueError("staff 用户需要社区：用 --scope COMMUNITY 给出他能查看的社区代号")
    if role == "admin" and scope is not None:
        raise ValueError("admin 能查看所有社区：去掉 --scope，或用 --role staff")
    return scope


def _check_password(name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"密码太短：至少要 {MIN_PASSWORD} 个字符")
    if password.casefold() == name.casefold():
        raise ValueError("密码和用户名相同：换一个密码")


class StaffDirectory:
    """The desk's staff, their sessions and their failed logins, kept in the snapshot database."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        session_hours: float = 12,
        idle_minutes: float = 30,
        max_failures: int = 5,
        lock_minutes: float = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if min(session_hours, idle_minutes, lock_minutes) <= 0 or max_failures < 1:
            raise ValueError(
                "HARVEST_DESK_SESSION_HOURS、HARVEST_DESK_IDLE_MINUTES 和 HARVEST_DESK_LOCK_MINUTES "
                "须大于 0，HARVEST_DESK_LOGIN_FAILURES 至少为 1"
            )
        self.engine = engine
        self._session_s = session_hours * 3600
        self._idle_s = idle_minutes * 60
        self._lock_s = lock_minutes * 60
        self._max_failures = max_failures
        self._clock = clock
        # The audit table is the store's; created here too, so a desk on a fresh database can audit.
        create_tables(engine, [USERS, SESSIONS, FAILURES, Audit.__table__])  # type: ignore[list-item]
        self._audit = Snapshot(engine)
        # Attempts being verified right now, per key: they count before their verdict, so a burst
        # of parallel guesses cannot slip past the limit while Argon2 runs (within this process).
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        _dummy_hash()  # made now, so the first unknown name takes no longer than any other

    # -- accounts -------------------------------------------------------------------------------

    def add(self, name: str, password: str, *, role: str, scope: str | None) -> Staffer:
        scope = check_account(name, role, scope)
        _check_password(name, password)
        if self._get(name) is not None:
            raise _taken(name)  # before hashing: no Argon2 spent on a refusal
        row = {
            "name": name,
            "role": role,
            "scope": scope,
            "password_hash": _HASHER.hash(password),
            "created_at": _utc(self._clock()),
            "disabled": False,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(USERS).values(row))
        except sa.exc.IntegrityError:  # added by someone else meanwhile
            raise _taken(name) from None
        return Staffer(name=name, role=role, scope=scope)

    def set_password(self, name: str, password: str) -> None:
        """A new password ends every session of the user and lifts a lock on its name."""
        _check_password(name, password)
        if self._get(name) is None:
            raise _unknown(name)
        hashed = _HASHER.hash(password)
        with self.engine.begin() as conn:
            conn.execute(sa.update(USERS).where(USERS.c.name == name).values(password_hash=hashed))
            self._forget(conn, name)

    def remove(self, name: str) -> None:
        """Delete the user; its sessions end at once."""
        with self.engine.begin() as conn:
            if conn.execute(sa.delete(USERS).where(USERS.c.name == name)).rowcount == 0:
                raise _unknown(name)
            self._forget(conn, name)

    def users(self) -> list[Staffer]:
        with Session(self.engine) as session:
            return [_staffer(u) for u in session.exec(select(StaffUser).order_by(USERS.c.name))]

    # -- sessions -------------------------------------------------------------------------------

    def login(self, name: str, password: str, *, client: str) -> DeskLogin:
        now = self._clock()
        actor = name[:KEY_CHARS]  # what was typed as a name may be long; the audit needs no more
        keys = (f"user:{actor}", f"{CLIENT}{client[:KEY_CHARS]}")
        try:
            self._admit(keys, now)
        except LoginThrottled:
            self._record(actor, "login_throttled", client)
            raise
        try:
            user = self._verify(name, password)
            if user is None:
                self._count_failure(keys, now)  # before the release, so the count is never unseen
        finally:
            self._release(keys)
        if user is None:
            self._record(actor, "login_failed", client)
            raise LoginRefused()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        at = _utc(now)
        with self.engine.begin() as conn:
            if _HASHER.check_needs_rehash(user.password_hash):
                rehashed = _HASHER.hash(password)
                conn.execute(sa.update(USERS).where(USERS.c.name == name).values(password_hash=rehashed))
            # A success clears the name's count but not the client's: otherwise one good account
            # would let a client guess at every other name without end.
            conn.execute(sa.delete(FAILURES).where(FAILURES.c.key == keys[0]))
            conn.execute(
                sa.delete(SESSIONS).where(
                    sa.or_(
                        SESSIONS.c.last_seen < _utc(now - self._idle_s),
                        SESSIONS.c.created_at < _utc(now - self._session_s),
                    )
                )
            )
            conn.execute(
                sa.insert(SESSIONS).values(
                    token_hash=_digest(token),
                    user=name,
                    csrf=csrf,
                    created_at=at,
                    last_seen=at,
                    client=client,
                )
            )
        self._record(actor, "login", client)
        return DeskLogin(token=token, csrf=csrf, user=_staffer(user))

    def session(self, token: str) -> DeskLogin | None:
        """The live session of ``token``, or None when it is unknown, idle too long, too old, or
        its user is gone or disabled (such a session is deleted on the way)."""
        now = self._clock()
        digest = _digest(token)
        this = SESSIONS.c.token_hash == digest
        # One statement, not two ORM loads: every page of the desk asks this first.
        found = sa.select(
            SESSIONS.c.csrf,
            SESSIONS.c.created_at,
            SESSIONS.c.last_seen,
            USERS.c.name,
            USERS.c.role,
            USERS.c.scope,
            USERS.c.disabled,
        ).select_from(SESSIONS.outerjoin(USERS, USERS.c.name == SESSIONS.c.user))
        with self.engine.connect() as conn:
            row = conn.execute(found.where(this)).first()
        if row is None:
            return None
        seen = _seconds(row.last_seen)
        expired = now - seen > self._idle_s or now - _seconds(row.created_at) > self._session_s
        if row.name is None or row.disabled or expired:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(SESSIONS).where(this))
            return None
        if now - seen >= TOUCH_EVERY_S:
            with self.engine.begin() as conn:
                conn.execute(sa.update(SESSIONS).where(this).values(last_seen=_utc(now)))
        user = Staffer(name=row.name, role=row.role, scope=row.scope)
        return DeskLogin(token=token, csrf=row.csrf, user=user)

    def logout(self, token: str) -> None:
        """End the session of ``token``; an unknown or ended one is left alone."""
        with self.engine.begin() as conn:
            ended = conn.execute(
                sa.delete(SESSIONS)
                .where(SESSIONS.c.token_hash == _digest(token))
                .returning(SESSIONS.c.user, SESSIONS.c.client)
            ).first()
        if ended is not None:
            self._record(ended.user, "logout", ended.client)

    # -- the parts ------------------------------------------------------------------------------

    def _get(self, name: str) -> StaffUser | None:
        with Session(self.engine) as session:
            return session.get(StaffUser, name)

    def _forget(self, conn: sa.Connection, name: str) -> None:
        """End the user's sessions and clear its name's failures: an admin has just acted on it."""
        conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.user == name))
        conn.execute(sa.delete(FAILURES).where(FAILURES.c.key == f"user:{name}"))

    def _admit(self, keys: Sequence[str], now: float) -> None:
        """Refuse the attempt while a key must wait (a locked name, a slowed address), or when its
        failures and the attempts now being verified already reach the limit; otherwise count it in
        flight."""
        with self._lock:
            with Session(self.engine) as session:
                rows = [session.get(LoginFailure, key) for key in keys]
            wait = 0.0
            for key, row in zip(keys, rows, strict=True):
                failures = 0
                if row is not None and row.locked_until is not None:
                    wait = max(wait, _seconds(row.locked_until) - now)  # an ended wait gives <= 0
                if row is not None and _seconds(row.first_at) > now - self._lock_s:
                    failures = row.count
                in_flight = self._in_flight[key]
                if in_flight and failures + in_flight >= self._max_failures:
                    # Only attempts still being verified stand between this one and the limit:
                    # their verdict comes within a second. (Past it, an address tries one at a time.)
                    wait = max(wait, 1.0)
            if wait > 0:
                raise LoginThrottled(math.ceil(wait))
            self._in_flight.update(keys)

    def _release(self, keys: Sequence[str]) -> None:
        with self._lock:
            self._in_flight.subtract(keys)
            for key in keys:
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    def _verify(self, name: str, password: str) -> StaffUser | None:
        user = self._get(name)
        try:
            _HASHER.verify(user.password_hash if user is not None else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        return None if user is None or user.disabled else user

    def _count_failure(self, keys: Sequence[str], now: float) -> None:
        """Count one failure per key with statements that read and write at once (several desk
        processes may share the database); a name that reaches the limit is locked, an address
        past it waits longer after each further failure."""
        count, first_at, locked_until = FAILURES.c.count, FAILURES.c.first_at, FAILURES.c.locked_until
        at, window_start = _utc(now), _utc(now - self._lock_s)
        with self.engine.begin() as conn:
            for key in keys:
                this = FAILURES.c.key == key
                # A window that has passed, and whose wait has ended, starts again with this failure.
                # (An address's ended delay alone does not: its next delay must be longer.)
                conn.execute(
                    sa.update(FAILURES)
                    .where(this, first_at <= window_start, sa.or_(locked_until.is_(None), locked_until <= at))
                    .values({count: 0, first_at: at, locked_until: None})
                )
                counted = conn.execute(
                    sa.update(FAILURES).where(this).values({count: count + 1}).returning(count)
                ).scalar()
                if counted is None:
                    conn.execute(sa.insert(FAILURES).values({FAILURES.c.key: key, count: 1, first_at: at}))
                    counted = 1
                if counted < self._max_failures:
                    continue
                if key.startswith(CLIENT):
                    delay = min(MAX_CLIENT_DELAY_S, 2 ** (counted - self._max_failures))  # 1 s, 2 s, 4 s…
                    conn.execute(sa.update(FAILURES).where(this).values({locked_until: _utc(now + delay)}))
                else:
                    conn.execute(
                        sa.update(FAILURES)
                        .where(this, locked_until.is_(None))
                        .values({locked_until: _utc(now + self._lock_s)})
                    )
            # Keys whose window and lock have both passed say nothing any more.
            conn.execute(
                sa.delete(FAILURES).where(
                    first_at <= window_start, sa.or_(locked_until.is_(None), locked_until <= at)
                )
            )

    def _record(self, actor: str, action: str, client: str) -> None:
        self._audit.audit(Access(actor=actor), action, None, {"client": client}, 0)


def _unknown(name: str) -> ValueError:
    return ValueError(f"没有查询台用户 {name!r}：`harvest desk users` 列出所有用户")


def _taken(name: str) -> ValueError:
    return ValueError(
        f"查询台用户 {name!r} 已存在：换一个名字，或用 `harvest desk set-password {name}` 改密码"
    )
