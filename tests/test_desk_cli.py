"""`harvest desk …`: staff accounts by prompt or stdin, errors as one line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli import app
from desk._staff import LoginRefused, StaffDirectory, Staffer
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
    assert "Added desk user wang (staff, community donghu)" in result.output
    assert result.output.count("Password") == 1 and "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    assert _directory().login("wang", PASSWORD, client="cli-test").user == Staffer("wang", "staff", "donghu")


def test_add_user_refuses_two_different_passwords() -> None:
    result = _desk(*ADD_WANG, stdin=f"{PASSWORD}\nOther-pw-123\n")
    assert result.exit_code != 0 and "do not match" in result.output
    assert _directory().users() == []


def test_add_user_with_password_stdin() -> None:
    result = _desk(*ADD_BOSS, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "every community" in result.output and "Password" not in result.output
    assert _directory().login("boss", PASSWORD, client="cli-test").user.is_admin
    empty = _desk("add-user", "li", "--role", "admin", "--password-stdin", stdin="")
    _one_line_error(empty, "no password on stdin")


def test_a_duplicate_user_is_one_line_and_exit_2() -> None:
    assert _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n").exit_code == 0
    again = _desk("add-user", "wang", "--role", "admin", "--password-stdin", stdin="Another-pw-1\n")
    _one_line_error(again, "'wang' already exists", "set-password")
    assert _directory().users() == [Staffer("wang", "staff", "donghu")]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add-user", "wang", "--role", "staff"], ["needs a scope", "--scope"]),
        (["add-user", "wang", "--role", "admin", "--scope", "donghu"], ["leave the scope out"]),
        (["add-user", "wang", "--role", "root"], ["use one of admin, staff"]),
        (["add-user", "w", "--role", "admin"], ["2 to 40 letters"]),
    ],
)
def test_bad_accounts_are_refused_before_a_password_is_asked(args: list[str], words: list[str]) -> None:
    result = _desk(*args)  # no input: a prompt would abort with exit 1
    _one_line_error(result, *words)
    assert "Password" not in result.output
    assert _directory().users() == []


def test_a_short_password_is_refused() -> None:
    result = _desk("add-user", "wang", "--role", "admin", "--password-stdin", stdin="short\n")
    _one_line_error(result, "at least 8 characters")
    assert "short" not in result.stderr.replace("too short", "")


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
    _one_line_error(unknown, "no desk user 'nobody'", "harvest desk users")


def test_remove_user() -> None:
    _desk(*ADD_WANG, "--password-stdin", stdin=f"{PASSWORD}\n")
    removed = _desk("remove-user", "wang")
    assert removed.exit_code == 0 and "Removed desk user wang" in removed.output
    assert _directory().users() == []
    _one_line_error(_desk("remove-user", "wang"), "no desk user 'wang'")


def test_an_unusable_database_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARVEST_DATABASE_URL", f"sqlite:///{tmp_path}")  # a folder, not a database
    _one_line_error(_desk("users"), "cannot use the database", "HARVEST_DATABASE_URL")


def test_help_explains_each_command_and_offers_no_password_option() -> None:
    overview = _desk("--help")
    assert overview.exit_code == 0
    for command in ("add-user", "set-password", "remove-user", "users"):
        assert command in overview.output
        helped = _desk(command, "--help")
        assert helped.exit_code == 0 and len(helped.output.split()) > 15
        assert "--password " not in helped.output and "--password=" not in helped.output
    assert "--password-stdin" in _desk("add-user", "--help").output
    assert "desk" in runner.invoke(app, ["--help"]).output
