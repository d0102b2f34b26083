"""`harvest desk …`: the IT staff's commands for the desk's staff accounts.

A password is read by a hidden prompt, typed twice, or as one line from stdin with
``--password-stdin`` (``printf '%s\\n' "$PW" | harvest desk add-user …``); never from an
option, because a command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from desk._staff import ROLES, StaffDirectory, StaffUser, check_account
from settings import load_settings
from store import StoreUnavailable, make_engine

app = typer.Typer(
    help="Staff accounts of the desk (the query web site): add, change a password, remove, list.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)

Name = Annotated[str, typer.Argument(help="Login name: 2 to 40 letters, digits, '_', '.' or '-'.")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password as one line from stdin (for scripts) instead of asking twice, hidden.",
    ),
]


def _fail(message: str) -> typer.Exit:
    stderr.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


@contextlib.contextmanager
def _handled(url: str) -> Iterator[None]:
    """A refusal or an unusable database becomes one red line on stderr and exit 2."""
    try:
        yield
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    except (StoreUnavailable, OSError, sa.exc.SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        shown = sa.make_url(url).render_as_string(hide_password=True)
        raise _fail(
            f"cannot use the database {shown}: {reason}; check HARVEST_DATABASE_URL and HARVEST_DATA_DIR"
        ) from exc


def _directory(url: str) -> StaffDirectory:
    settings = load_settings()
    return StaffDirectory(
        make_engine(url),
        session_hours=settings.desk_session_hours,
        idle_minutes=settings.desk_idle_minutes,
        max_failures=settings.desk_login_failures,
        lock_minutes=settings.desk_lock_minutes,
    )


def _password(from_stdin: bool) -> str:
    if not from_stdin:
        typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return typed
    line = sys.stdin.readline()
    if not line.strip():
        raise ValueError("no password on stdin: pipe it as one line, or leave out --password-stdin")
    return line.rstrip("\r\n")


@app.command("add-user")
def add_user(
    name: Name,
    role: Annotated[
        str, typer.Option(help=f"{' or '.join(ROLES)}: an admin sees every community, staff only its scope.")
    ],
    scope: Annotated[
        str | None,
        typer.Option(help="Community code whose records a staff user may see (required for staff)."),
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a desk user. The password (at least 8 characters) is asked twice, hidden."""
    url = load_settings().resolved_database_url
    with _handled(url):
        directory = _directory(url)
        check_account(name, role, scope)  # refused before anyone types a password
        if name in {user.name for user in directory.users()}:
            raise ValueError(f"desk user {name!r} already exists: pick another name, or use set-password")
        user = directory.add(name, _password(password_stdin), role=role, scope=scope)
    where = "every community" if user.scope is None else f"community {user.scope}"
    console.print(f"Added desk user {user.name} ({user.role}, {where}).", markup=False)


@app.command("set-password")
def set_password(name: Name, password_stdin: PasswordStdin = False) -> None:
    """Give a desk user a new password: ends the user's sessions and lifts a lock on the name."""
    url = load_settings().resolved_database_url
    with _handled(url):
        directory = _directory(url)
        if name not in {user.name for user in directory.users()}:  # before anyone types a password
            raise ValueError(f"no desk user {name!r}: `harvest desk users` lists them")
        directory.set_password(name, _password(password_stdin))
    console.print(f"New password for {name}; its sessions have ended.", markup=False)


@app.command("remove-user")
def remove_user(name: Name) -> None:
    """Remove a desk user; the user's sessions end at once."""
    url = load_settings().resolved_database_url
    with _handled(url):
        _directory(url).remove(name)
    console.print(f"Removed desk user {name}.", markup=False)


@app.command()
def users() -> None:
    """The desk users: name, role, the community each may see, when each was added."""
    url = load_settings().resolved_database_url
    with _handled(url):
        directory = _directory(url)
        with Session(directory.engine) as session:  # the rows, for created_at and disabled
            rows = list(session.exec(select(StaffUser).order_by(StaffUser.name)))
    table = Table(title=f"Desk users ({len(rows)})")
    for column in ("name", "role", "scope", "created"):
        table.add_column(column)
    for user in rows:
        created = user.created_at.replace(tzinfo=user.created_at.tzinfo or dt.UTC).astimezone()
        table.add_row(
            user.name + (" (disabled)" if user.disabled else ""),
            user.role,
            user.scope or "全部",
            f"{created:%Y-%m-%d %H:%M}",
        )
    console.print(table)
