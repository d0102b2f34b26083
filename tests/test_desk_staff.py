"""Desk staff: Argon2id passwords, sessions that end, throttled logins, an audit of every outcome."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlmodel import Session, select

from desk._staff import (
    DeskLogin,
    LoginRefused,
    LoginThrottled,
    StaffDirectory,
    Staffer,
    StaffUser,
)
from store import Audit, make_engine

PASSWORD = "Desk-秘密-pw-4711"
OTHER_PASSWORD = "Other-pw-0815"
START = 1_750_000_000.0
PROXY = "127.0.0.1"  # the address every user has behind the reverse proxy on the same host


class Clock:
    """Time the directory sees; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "desk.db"


@pytest.fixture
def empty(db_path: Path, clock: Clock) -> StaffDirectory:
    return StaffDirectory(make_engine(f"sqlite:///{db_path}"), clock=clock)


@pytest.fixture
def directory(empty: StaffDirectory) -> StaffDirectory:
    staff = empty
    staff.add("wang", PASSWORD, role="staff", scope="donghu")
    staff.add("boss", OTHER_PASSWORD, role="admin", scope=None)
    return staff


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 verification, counted through argon2-cffi's own method (no stand-in)."""
    calls: list[str] = []
    real: Callable[..., bool] = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        calls.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return calls


def _refused(directory: StaffDirectory, name: str, password: str, client: str) -> LoginRefused:
    with pytest.raises(LoginRefused) as caught:
        directory.login(name, password, client=client)
    return caught.value


def _audit(directory: StaffDirectory) -> list[tuple[str, str, dict[str, Any]]]:
    with Session(directory.engine) as session:
        rows = session.exec(select(Audit).order_by(Audit.id))  # type: ignore[arg-type]
        return [(row.actor, row.action, json.loads(row.detail or "{}")) for row in rows]


def test_the_password_is_kept_as_an_argon2id_hash_only(directory: StaffDirectory) -> None:
    with Session(directory.engine) as session:
        stored = session.get(StaffUser, "wang")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert PasswordHasher().verify(stored.password_hash, PASSWORD)
    assert stored.created_at is not None and not stored.disabled


def test_a_login_gives_tokens_and_a_session_that_knows_the_user(directory: StaffDirectory) -> None:
    login = directory.login("wang", PASSWORD, client="10.0.0.1")
    assert login.user == Staffer("wang", "staff", "donghu") and not login.user.is_admin
    assert len(login.token) >= 40 and len(login.csrf) >= 40 and login.token != login.csrf
    assert directory.session(login.token) == login
    assert login.token not in repr(login) and login.csrf not in repr(login)
    admin = directory.login("boss", OTHER_PASSWORD, client="10.0.0.1")
    assert admin.user.is_admin and admin.user.scope is None
    assert admin.token != login.token and directory.session(admin.token) == admin
    assert directory.session("not-a-token") is None and directory.session("") is None


def test_wrong_password_unknown_and_disabled_users_are_refused_alike(
    directory: StaffDirectory, verifications: list[str]
) -> None:
    directory.add("li", PASSWORD, role="staff", scope="xiyuan")
    with Session(directory.engine) as session:
        li = session.get(StaffUser, "li")
        assert li is not None
        li.disabled = True
        session.add(li)
        session.commit()
    refusals = [
        _refused(directory, "wang", "wrong-password", "10.0.0.1"),
        _refused(directory, "nobody", PASSWORD, "10.0.0.2"),
        _refused(directory, "li", PASSWORD, "10.0.0.3"),
    ]
    assert [(type(r), str(r)) for r in refusals] == [(LoginRefused, "用户名或密码错误")] * 3
    # The unknown name cost an Argon2 verification too, so timing does not tell which names exist.
    assert len(verifications) == 3 and all(h.startswith("$argon2id$") for h in verifications)


def test_failures_lock_a_user_even_against_the_right_password(
    directory: StaffDirectory, clock: Clock, verifications: list[str]
) -> None:
    for attempt in range(5):  # a new client each time: only the user's count can lock
        refused = _refused(directory, "wang", f"guess-{attempt}", f"10.0.1.{attempt}")
        assert type(refused) is LoginRefused
    verifications.clear()
    clock.advance(1)
    with pytest.raises(LoginThrottled) as caught:
        directory.login("wang", PASSWORD, client="10.0.2.1")
    assert caught.value.retry_after == 14 * 60 and "请 14 分钟后再试" in str(caught.value)
    assert verifications == []  # refused without looking at the password
    assert directory.login("boss", OTHER_PASSWORD, client="10.0.2.1")  # another user is not locked
    clock.advance(14)
    assert directory.login("wang", PASSWORD, client="10.0.2.1").user.name == "wang"


def _guess(directory: StaffDirectory, clock: Clock, name: str, client: str) -> int:
    """One wrong password for ``name`` from ``client``, after waiting out what the client is told to
    wait; the seconds waited."""
    waited = 0
    while True:
        try:
            directory.login(name, "guess-1234", client=client)
        except LoginThrottled as exc:
            waited += exc.retry_after
            clock.advance(exc.retry_after / 60)
        except LoginRefused:
            return waited


def test_failures_from_one_address_slow_it_down_more_and_more(
    directory: StaffDirectory, clock: Clock
) -> None:
    waits = [_guess(directory, clock, f"name{n:02d}", PROXY) for n in range(13)]  # a new name each time
    assert waits == [0] * 5 + [1, 2, 4, 8, 16, 32, 60, 60]
    assert "请 1 秒后再试" in str(LoginThrottled(1))
    with pytest.raises(LoginThrottled) as caught:
        directory.login("wang", PASSWORD, client=PROXY)
    assert caught.value.retry_after == 60 and "请 1 分钟后再试" in str(caught.value)
    assert directory.login("wang", PASSWORD, client="10.0.0.1")  # the user is fine elsewhere


def test_an_attack_from_the_proxy_address_never_locks_its_users_out(
    directory: StaffDirectory, clock: Clock
) -> None:
    # Behind the same-host proxy every user has its address: 20 guesses at other names there
    waits = [_guess(directory, clock, f"name{n:02d}", PROXY) for n in range(20)]
    assert max(waits) == 60
    with pytest.raises(LoginThrottled) as caught:  # cost a colleague a minute, not a lock-out
        directory.login("wang", PASSWORD, client=PROXY)
    assert caught.value.retry_after == 60
    clock.advance(1)
    assert directory.login("wang", PASSWORD, client=PROXY).user.name == "wang"


def test_a_name_locked_behind_the_proxy_leaves_every_other_name_free(
    directory: StaffDirectory, clock: Clock
) -> None:
    for attempt in range(5):
        _refused(directory, "wang", f"guess-{attempt}", PROXY)
    with pytest.raises(LoginThrottled) as locked:
        directory.login("wang", PASSWORD, client=PROXY)
    assert locked.value.retry_after == 15 * 60  # the name is locked
    clock.advance(1 / 60)  # the address waits a second
    assert directory.login("boss", OTHER_PASSWORD, client=PROXY).user.name == "boss"
    clock.advance(14)
    with pytest.raises(LoginThrottled):
        directory.login("wang", PASSWORD, client=PROXY)
    clock.advance(1)
    assert directory.login("wang", PASSWORD, client=PROXY).user.name == "wang"


def test_a_success_clears_the_users_count_but_not_the_clients(directory: StaffDirectory) -> None:
    for attempt in range(4):
        _refused(directory, "wang", f"guess-{attempt}", "10.0.0.7")
    directory.login("wang", PASSWORD, client="10.0.0.7")
    for attempt in range(4):  # the user starts again from 0: four more do not lock it
        _refused(directory, "wang", f"again-{attempt}", f"10.0.3.{attempt}")
    assert directory.login("wang", PASSWORD, client="10.0.4.1")
    _refused(directory, "boss", "guess-9999", "10.0.0.7")  # the client's fifth failure
    with pytest.raises(LoginThrottled):
        directory.login("boss", OTHER_PASSWORD, client="10.0.0.7")


def test_failures_spread_over_more_than_the_window_do_not_lock(
    directory: StaffDirectory, clock: Clock
) -> None:
    for attempt in range(4):
        _refused(directory, "wang", f"guess-{attempt}", "10.0.0.1")
    clock.advance(16)
    for attempt in range(4):
        assert type(_refused(directory, "wang", f"later-{attempt}", "10.0.0.1")) is LoginRefused
    assert directory.login("wang", PASSWORD, client="10.0.0.1")


def test_parallel_guesses_cannot_pass_the_limit(directory: StaffDirectory, verifications: list[str]) -> None:
    start = threading.Barrier(12)
    outcomes: list[str] = []

    def guess(n: int) -> None:
        start.wait()
        try:
            directory.login("wang", f"parallel-{n}", client=f"10.1.0.{n}")
        except LoginRefused as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(verifications) == 5  # never more passwords tried than the limit allows
    assert sorted(outcomes) == ["LoginRefused"] * 5 + ["LoginThrottled"] * 7


def test_a_session_ends_when_idle_and_after_its_lifetime(directory: StaffDirectory, clock: Clock) -> None:
    login = directory.login("wang", PASSWORD, client="10.0.0.1")
    clock.advance(29)
    assert directory.session(login.token) == login  # and it is touched
    clock.advance(29)
    assert directory.session(login.token) == login
    clock.advance(31)
    assert directory.session(login.token) is None
    clock.advance(1)
    assert directory.session(login.token) is None  # deleted, not revived

    busy = directory.login("wang", PASSWORD, client="10.0.0.1")
    for _ in range(35):  # a request every 20 minutes for 11 h 40
        clock.advance(20)
        assert directory.session(busy.token) == busy
    clock.advance(20.5)  # 12 h since the login
    assert directory.session(busy.token) is None


def test_logout_ends_the_session(directory: StaffDirectory) -> None:
    login = directory.login("wang", PASSWORD, client="10.0.0.1")
    other = directory.login("wang", PASSWORD, client="10.0.0.2")
    directory.logout(login.token)
    assert directory.session(login.token) is None
    assert directory.session(other.token) == other  # the user's other browser stays
    directory.logout(login.token)  # twice is harmless
    directory.logout("unknown")


def test_set_password_and_remove_end_the_users_sessions(directory: StaffDirectory) -> None:
    wang = directory.login("wang", PASSWORD, client="10.0.0.1")
    boss = directory.login("boss", OTHER_PASSWORD, client="10.0.0.1")
    directory.set_password("wang", "Brand-new-pw-1")
    assert directory.session(wang.token) is None and directory.session(boss.token) == boss
    _refused(directory, "wang", PASSWORD, "10.0.0.2")
    assert directory.login("wang", "Brand-new-pw-1", client="10.0.0.2")
    directory.remove("boss")
    assert directory.session(boss.token) is None
    _refused(directory, "boss", OTHER_PASSWORD, "10.0.0.3")
    assert directory.users() == [Staffer("wang", "staff", "donghu")]
    with pytest.raises(ValueError, match="没有查询台用户 'boss'"):
        directory.remove("boss")
    with pytest.raises(ValueError, match="没有查询台用户 'nobody'"):
        directory.set_password("nobody", "Whatever-pw-1")


def test_set_password_lifts_a_lock_on_the_name(directory: StaffDirectory) -> None:
    for attempt in range(5):
        _refused(directory, "wang", f"guess-{attempt}", f"10.0.5.{attempt}")
    directory.set_password("wang", "Brand-new-pw-1")
    assert directory.login("wang", "Brand-new-pw-1", client="10.0.6.1")


def test_a_hash_made_with_weaker_parameters_is_replaced_at_login(directory: StaffDirectory) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with directory.engine.begin() as conn:
        conn.execute(sa.update(StaffUser).where(StaffUser.name == "wang").values(password_hash=weak))  # type: ignore[arg-type]
    directory.login("wang", PASSWORD, client="10.0.0.1")
    with Session(directory.engine) as session:
        stored = session.get(StaffUser, "wang")
    assert stored is not None and stored.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(stored.password_hash)
    assert directory.login("wang", PASSWORD, client="10.0.0.1")


def test_the_database_holds_no_password_and_no_live_token(directory: StaffDirectory, db_path: Path) -> None:
    logins: list[DeskLogin] = [directory.login("wang", PASSWORD, client="10.0.0.1") for _ in range(2)]
    logins.append(directory.login("boss", OTHER_PASSWORD, client="10.0.0.1"))
    _refused(directory, "wang", "Typed-wrong-pw-99", "10.0.0.1")
    for login in logins:
        assert directory.session(login.token) == login
    files = [db_path, db_path.with_name(db_path.name + "-wal")]
    stored = b"".join(path.read_bytes() for path in files if path.exists())
    assert len(stored) > 10_000 and b"$argon2id$" in stored  # the files were read, hashes and all
    for secret in (PASSWORD, OTHER_PASSWORD, "Typed-wrong-pw-99", *(login.token for login in logins)):
        assert secret.encode() not in stored


def test_every_login_outcome_is_audited_without_secrets(directory: StaffDirectory) -> None:
    login = directory.login("wang", PASSWORD, client="10.0.0.1")
    directory.logout(login.token)
    for attempt in range(5):
        _refused(directory, "li", f"guess-{attempt}", "10.0.0.2")
    with pytest.raises(LoginThrottled):
        directory.login("li", "guess-5", client="10.0.0.2")
    assert _audit(directory) == [
        ("wang", "login", {"client": "10.0.0.1"}),
        ("wang", "logout", {"client": "10.0.0.1"}),
        *[("li", "login_failed", {"client": "10.0.0.2"})] * 5,
        ("li", "login_throttled", {"client": "10.0.0.2"}),
    ]
    with directory.engine.connect() as conn:
        text = json.dumps([list(row) for row in conn.execute(sa.select(Audit.__table__))], default=str)  # type: ignore[attr-defined]
    assert PASSWORD not in text and "guess-" not in text and login.token not in text


@pytest.mark.parametrize(
    ("name", "password", "role", "scope", "message"),
    [
        ("x", PASSWORD, "staff", "donghu", "2 到 40 个英文字母"),
        ("has space", PASSWORD, "staff", "donghu", "2 到 40 个英文字母"),
        ("王芳", PASSWORD, "staff", "donghu", "2 到 40 个英文字母"),
        ("a" * 41, PASSWORD, "staff", "donghu", "2 到 40 个英文字母"),
        ("zhang", PASSWORD, "root", None, "admin、staff 之一"),
        ("zhang", PASSWORD, "staff", None, "staff 用户需要社区"),
        ("zhang", PASSWORD, "staff", "  ", "staff 用户需要社区"),
        ("zhang", PASSWORD, "admin", "donghu", "去掉 --scope"),
        ("zhang", "abc1234", "staff", "donghu", "至少要 8 个字符"),
        ("zhang.san", "Zhang.San", "staff", "donghu", "密码和用户名相同"),
    ],
)
def test_add_refuses_bad_input(
    empty: StaffDirectory, name: str, password: str, role: str, scope: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        empty.add(name, password, role=role, scope=scope)
    assert "\n" not in str(caught.value) and password not in str(caught.value)
    assert empty.users() == []


def test_add_refuses_a_name_that_exists(directory: StaffDirectory) -> None:
    with pytest.raises(ValueError, match="'wang' 已存在：换一个名字，或用 `harvest desk set-password wang`"):
        directory.add("wang", OTHER_PASSWORD, role="admin", scope=None)
    assert directory.users() == [Staffer("boss", "admin", None), Staffer("wang", "staff", "donghu")]
    assert directory.login("wang", PASSWORD, client="10.0.0.1")  # the existing user is untouched
