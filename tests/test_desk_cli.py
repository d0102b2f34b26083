"""`harvest desk …`: staff accounts by prompt or stdin, errors as one line and exit 2, all in Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import Result
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli import app
from desk._staff import LoginRefused, StaffDirectory, Staffer, StaffUser
from machine import local_time
from settings import load_settings
from store import make_engine

runner = CliRunner(env={"COLUMNS": "250"})
PASSWORD = "Cli-desk-pw-3141"
ADD_WANG = ("add-user", "wang", "--role", "staff", "--scope", "donghu")
ADD_BOSS = ("add-user", "boss", "--role", "admin")


def _directory() -> StaffDirectory:
    return StaffDirectory(make_engine(load_settings().resolved_database_url))


def _desk(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["desk", *args], input=stdin)


def _one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() and "\n" not in result.stderr.strip(), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.stderr


def test_add_user_by_prompt_asks_twice_and_shows_no_password() -> None:
    result = _desk(*ADD_WANG, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "已添加查询台用户 wang（staff，社区 donghu）" in result.output
    assert result.output.count("密码") == 2 and "再输入一次密码" in result.output
    assert "Password" not in result.output and "Repeat" not in result.output
    assert PASSWORD not in result.output
    assert _directory().login("wang", PASSWORD, client="cli-test").user == Staffer("wang", "staff", "donghu")


def test_add_user_refuses_two_different_passwords() -> None:
    result = _desk(*ADD_WANG, stdin=f"{PASSWORD}\nOther-pw-123\n")
    _one_line_error(result, "两次输入的密码不一样", "重新运行")
    assert PASSWORD not in result.output and "Other-pw-123" not in result.output
    assert _directory().users() == []


def test_add_user_with_password_stdin() -> None:
    result = _desk(*ADD_BOSS, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "所有社区" in result.output and "密码" not in result.output
    assert _directory().login("boss", PASSWORD, client="cli-test").user.is_admin
    empty = _desk("add-user", "li", "--role", "admin", "--password-stdin", stdin="")
    _one_line_error(empty, "stdin 里没有密码", "--password-stdin")


def test_a_duplicate_user_is_one_line_and_exit_2() -> None:
    assert _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n").exit_code == 0
    again = _desk("add-user", "wang", "--role", "admin", "--password-stdin", stdin="Another-pw-1\n")
    _one_line_error(again, "查询台用户 'wang' 已存在", "harvest desk set-password wang")
    assert _directory().users() == [Staffer("wang", "staff", "donghu")]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add-user", "wang", "--role", "staff"], ["staff 用户需要社区", "--scope"]),
        (["add-user", "wang", "--role", "admin", "--scope", "donghu"], ["去掉 --scope", "--role staff"]),
        (["add-user", "wang", "--role", "root"], ["没有角色 'root'", "admin、staff"]),
        (["add-user", "w", "--role", "admin"], ["2 到 40 个英文字母"]),
    ],
)
def test_bad_accounts_are_refused_before_a_password_is_asked(args: list[str], words: list[str]) -> None:
    result = _desk(*args)  # no input: a prompt would abort with exit 1
    _one_line_error(result, *words)
    assert "密码" not in result.output
    assert _directory().users() == []


def test_a_short_password_is_refused() -> None:
    result = _desk("add-user", "wang", "--role", "admin", "--password-stdin", stdin="short\n")
    _one_line_error(result, "密码太短", "至少要 8 个字符")
    assert "short" not in result.stderr


def test_users_lists_name_role_scope_and_creation() -> None:
    _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n")
    _desk(*ADD_BOSS, "--password-stdin", stdin=f"{PASSWORD}\n")
    listed = _desk("users")
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "wang" in line or "boss" in line]
    assert len(lines) == 2 and "boss" in lines[0]  # by name
    assert "admin" in lines[0] and "全部" in lines[0]
    assert "staff" in lines[1] and "donghu" in lines[1]
    assert all(re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b", line) for line in lines)
    assert "$argon2" not in listed.output and PASSWORD not in listed.output


def test_users_is_a_chinese_table_in_beijing_time_that_shows_brackets_as_typed() -> None:
    scope = "[red]donghu[/red]"  # a community code is free text: not markup
    _desk("add-user", "wang", "--role", "staff", "--scope", scope, "--password-stdin", stdin=f"{PASSWORD}\n")
    with Session(_directory().engine) as session:
        created = session.exec(select(StaffUser)).one().created_at
    listed = _desk("users")
    assert listed.exit_code == 0, listed.output
    assert "查询台账号（1 个）" in listed.output
    header = next(line for line in listed.output.splitlines() if "名称" in line)
    assert all(title in header for title in ("角色", "社区", "建立时间（北京时间）"))
    (row,) = [line for line in listed.output.splitlines() if "wang" in line]
    assert scope in row
    assert f"{local_time(created, 'Asia/Shanghai'):%Y-%m-%d %H:%M}" in row


def test_set_password_changes_it_and_ends_sessions() -> None:
    _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n")
    session = _directory().login("wang", PASSWORD, client="cli-test")
    changed = _desk("set-password", "wang", stdin="Fresh-pw-2718\nFresh-pw-2718\n")
    assert changed.exit_code == 0, changed.output
    directory = _directory()
    assert directory.session(session.token) is None
    with pytest.raises(LoginRefused):
        directory.login("wang", PASSWORD, client="cli-test")
    assert directory.login("wang", "Fresh-pw-2718", client="cli-test")
    piped = _desk("set-password", "wang", "--password-stdin", stdin="Piped-pw-1618\n")
    assert piped.exit_code == 0 and _directory().login("wang", "Piped-pw-1618", client="cli-test")
    unknown = _desk("set-password", "nobody")  # refused before a password is asked
    _one_line_error(unknown, "没有查询台用户 'nobody'", "harvest desk users")


def test_remove_user() -> None:
    _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n")
    removed = _desk("remove-user", "wang")
    assert removed.exit_code == 0 and "已删除查询台用户 wang" in removed.output
    assert _directory().users() == []
    _one_line_error(_desk("remove-user", "wang"), "没有查询台用户 'wang'")


def test_an_unusable_database_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARVEST_DATABASE_URL", f"sqlite:///{tmp_path}")  # a folder, not a database
    _one_line_error(_desk("users"), "无法使用", "检查 HARVEST_DATABASE_URL 和 HARVEST_DATA_DIR")


def test_help_explains_each_command_and_offers_no_password_option() -> None:
    overview = _desk("--help")
    assert overview.exit_code == 0
    for command in ("add-user", "set-password", "remove-user", "users"):
        assert command in overview.output
        helped = _desk(command, "--help")
        assert helped.exit_code == 0 and re.search(r"[\u4e00-\u9fff]{4}.{10,}。", helped.output)  # a sentence
        assert "--password " not in helped.output and "--password=" not in helped.output
    assert "--password-stdin" in _desk("add-user", "--help").output and "查询台" in overview.output
    assert "desk" in runner.invoke(app, ["--help"]).output
