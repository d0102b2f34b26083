"""`harvest desk …`: the IT staff's commands for the desk's staff accounts.

A password is read by a hidden prompt, typed twice, or as one line from stdin with
``--password-stdin`` (``printf '%s\\n' "$PW" | harvest desk add-user …``); never from an
option, because a command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from machine import local_time, zone_label

if TYPE_CHECKING:  # the database, Argon2 and the settings load when a command runs, not at `--help`
    from desk._staff import StaffDirectory

app = typer.Typer(
    help="查询台（社区数据查询网站）的工作人员账号：添加、改密码、删除、列出；网格员的网格和每日变动推送。",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)

Name = Annotated[str, typer.Argument(help="登录名：2 到 40 个英文字母、数字、'_'、'.' 或 '-'。")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="从 stdin 读一行作为密码（供脚本用），而不是隐藏输入两次。",
    ),
]


def _fail(message: str) -> typer.Exit:
    stderr.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


@contextlib.contextmanager
def _handled(url: str) -> Iterator[None]:
    """A refusal or an unusable database becomes one red line on stderr and exit 2."""
    import sqlalchemy as sa

    from store import StoreUnavailable

    try:
        yield
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    except (StoreUnavailable, OSError, sa.exc.SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        shown = sa.make_url(url).render_as_string(hide_password=True)
        raise _fail(
            f"数据库 {shown} 无法使用（{reason}）：检查 HARVEST_DATABASE_URL 和 HARVEST_DATA_DIR"
        ) from exc


def _directory(url: str) -> StaffDirectory:
    from desk._staff import StaffDirectory
    from settings import load_settings
    from store import make_engine

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
        typed: str = typer.prompt("密码", hide_input=True)
        # Asked again by hand: click's own confirmation answers a mismatch in English and asks
        # again; one line naming the fix says enough.
        if typer.prompt("再输入一次密码", hide_input=True) != typed:
            raise ValueError("两次输入的密码不一样：重新运行命令，两次输入同一个密码")
        return typed
    line = sys.stdin.readline()
    if not line.strip():
        raise ValueError("stdin 里没有密码：用管道传入一行，或去掉 --password-stdin")
    return line.rstrip("\r\n")


@app.command("add-user")
def add_user(
    name: Name,
    role: Annotated[
        str, typer.Option(help="admin 或 staff：admin 能查看所有社区，staff 只能查看自己的社区。")
    ],
    scope: Annotated[
        str | None,
        typer.Option(help="staff 用户能查看其记录的社区代号（staff 必填）。"),
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """添加一个查询台用户。密码（至少 8 个字符）隐藏输入两次。"""
    from desk._places import Places
    from desk._staff import _taken, check_account
    from settings import load_settings
    from store import Snapshot

    settings = load_settings()
    url = settings.resolved_database_url
    places = Places(settings.communities)
    with _handled(url):
        directory = _directory(url)
        scope = check_account(name, role, scope)  # refused before anyone types a password
        harvested = Snapshot(directory.engine).scopes()
        if scope is not None:
            scope = places.resolve(scope, harvested)
        if name in {user.name for user in directory.users()}:
            raise _taken(name)
        user = directory.add(name, _password(password_stdin), role=role, scope=scope)
    where = "所有社区" if user.scope is None else f"社区 {places.labelled(user.scope)}"
    console.print(f"已添加查询台用户 {user.name}（{user.role}，{where}）。", markup=False)
    if user.scope is not None and not harvested and user.scope not in places.names:
        stderr.print(
            f"注意：还没有采集到任何社区，也没有在 HARVEST_COMMUNITIES 里声明社区，无法核对 {user.scope!r}；"
            "采集后用 `harvest desk users` 核对。",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command("set-password")
def set_password(name: Name, password_stdin: PasswordStdin = False) -> None:
    """给查询台用户设新密码：结束这个用户的所有会话，并解除这个名字的锁定。"""
    from desk._staff import _unknown
    from settings import load_settings

    url = load_settings().resolved_database_url
    with _handled(url):
        directory = _directory(url)
        if name not in {user.name for user in directory.users()}:  # before anyone types a password
            raise _unknown(name)
        directory.set_password(name, _password(password_stdin))
    console.print(f"已为 {name} 设好新密码；这个用户的会话都已结束。", markup=False)


@app.command("remove-user")
def remove_user(name: Name) -> None:
    """删除一个查询台用户；这个用户的会话立即结束。"""
    from settings import load_settings

    url = load_settings().resolved_database_url
    with _handled(url):
        _directory(url).remove(name)
    console.print(f"已删除查询台用户 {name}。", markup=False)


@app.command()
def users() -> None:
    """查询台用户：名称、角色、能查看的社区、建立时间。"""
    from sqlmodel import Session, select

    from desk._digest import channel_of, grids
    from desk._places import Places
    from desk._staff import StaffUser
    from settings import load_settings

    settings = load_settings()
    url = settings.resolved_database_url
    places = Places(settings.communities)
    with _handled(url):
        directory = _directory(url)
        with Session(directory.engine) as session:  # the rows, for created_at and disabled
            rows = list(session.exec(select(StaffUser).order_by(StaffUser.name)))
        worked = grids(directory.engine)
    table = Table(title=f"查询台账号（{len(rows)} 个）")
    created_at = f"建立时间（{zone_label(settings.timezone)}）"
    for column in ("名称", "角色", "社区", "网格", "每日推送", created_at):
        table.add_column(column)
    for user in rows:
        created = local_time(user.created_at, settings.timezone)
        community = "全部" if user.scope is None else places.labelled(user.scope)
        target = settings.desk_digests.get(user.name)
        push = channel_of(target).name if target else "-"  # the channel's kind: its URL is a secret
        cells = (user.name + ("（已停用）" if user.disabled else ""), user.role, community)
        cells += (worked.get(user.name, "-"), push)
        # Escaped: a community code is free text, and "[x]" in it is not markup.
        table.add_row(*map(escape, cells), f"{created:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("set-grid")
def set_grid(
    name: Name, grid: Annotated[str, typer.Argument(help="这个用户负责的网格，如 第1网格。")]
) -> None:
    """设定工作人员负责的网格：每日变动推送（harvest desk digest）发给他这个网格的变动。"""
    from desk._digest import known_grids
    from desk._digest import set_grid as save_grid
    from desk._staff import _unknown
    from settings import load_settings

    url = load_settings().resolved_database_url
    with _handled(url):
        directory = _directory(url)
        user = next((u for u in directory.users() if u.name == name), None)
        if user is None:
            raise _unknown(name)
        if user.scope is None:
            raise ValueError(f"{name} 是管理员，没有社区：网格只能设给有社区的工作人员（--role staff）")
        known = known_grids(directory.engine, user.scope)
        grid = grid.strip()
        if known and grid not in known:
            raise ValueError(f"社区 {user.scope} 没有网格 {grid!r}：已知的网格有 {'、'.join(known)}")
        save_grid(directory.engine, name, grid)
    console.print(f"{name} 负责的网格已设为 {grid}。", markup=False)


@app.command()
def digest(
    day: Annotated[
        str | None, typer.Option(help="推送哪一天的（YYYY-MM-DD，默认今天）；每人每天只推送一次。")
    ] = None,
) -> None:
    """给 HARVEST_DESK_DIGESTS 里的每位网格员推送其网格的每日变动（脱敏）。"""
    import datetime as dt

    from desk._digest import send_digests
    from settings import load_settings

    settings = load_settings()
    with _handled(settings.resolved_database_url):
        try:
            chosen = dt.date.fromisoformat(day) if day else None
        except ValueError:
            raise ValueError(f"--day 须写成 YYYY-MM-DD（如 2026-05-01），不是 {day[:20]!r}") from None
        outcomes = send_digests(settings, day=chosen)
    if not outcomes:
        console.print("没有配置每日变动推送（HARVEST_DESK_DIGESTS），什么也没有发。", markup=False)
        return
    words = {
        "sent": "已推送",
        "already": "今天已推送过",
        "failed": "推送失败，下次运行会重试",
        "skipped": "未推送",
    }
    for outcome in outcomes:
        count = f"（{outcome.changes} 条变动）" if outcome.status in ("sent", "failed") else ""
        console.print(f"{outcome.user}：{words[outcome.status]}{count}", markup=False)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)
