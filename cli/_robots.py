"""The commands about the robots there are: `harvest list` (systems, robots, accounts and their last runs)
and `harvest new` (a system declaration, a declarative robot and a replay test for a new system)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli._common import EXIT_HELP, _clock, _fail, _print_broken, _red, _row, _store, _vault, _zoned, console

if TYPE_CHECKING:
    from connectors import Credentials
    from settings import Settings
    from store import Run

commands = typer.Typer()


@commands.command("list")
def list_() -> None:
    """系统、机器人和账号，以及每个账号最近一次采集和结果；无法加载的机器人文件也列出。"""
    from connectors import configured
    from robots.runtime import discover
    from settings import load_settings

    settings = load_settings()
    robots_ = discover()
    systems = {robot.system.name: robot.system for robot in robots_.values()}
    table = Table(title="系统")
    for column in ("代号", "名称", "网址", "礼貌上限"):
        table.add_column(column)
    for system in (configured(declared, settings) for declared in systems.values()):
        # Ceilings: the pace starts at one request in flight and finds the system's own below them.
        pace = f"至多同时 {system.politeness.concurrency} 个、每秒 {system.politeness.rate:g} 次"
        _row(table, system.name, system.title, system.base_url, pace)
    console.print(table)
    table = Table(title="机器人")
    for column in ("机器人", "系统", "数据集", "计划", "采集内容"):
        table.add_column(column)
    for robot in robots_.values():
        _row(table, robot.name, robot.system.name, robot.dataset, robot.schedule, robot.doc)
    console.print(table)
    _print_broken()
    vault = _vault(settings)
    last = _last_runs(settings)
    table = Table(title="账号")
    for column in ("系统", "账号", "社区", "状态", _zoned("最近采集", settings), "结果"):
        table.add_column(column)
    for account in vault.accounts():
        run = last.get((account.system, account.account))
        status = "ok" if account.status == "ok" else _red(f"已停用（{account.parked_kind}）")
        when = _clock(settings, run.started_at) if run else "从未"
        result = (run.status if run.status == "ok" else f"{run.status}: {run.failure_kind}") if run else ""
        _row(table, account.system, account.account, account.scope, status, when, result)
    console.print(table)


def _last_runs(settings: Settings) -> dict[tuple[str, str], Run]:
    from sqlmodel import Session, select

    from store import Run

    with Session(_store(settings).engine) as session:
        runs_ = session.exec(select(Run).order_by(Run.started_at))  # type: ignore[arg-type]
        return {(run.system, run.account): run for run in runs_}


@commands.command(epilog=EXIT_HELP)
def new(
    name: Annotated[str, typer.Argument(help="新系统的名字（小写英文），即保险库里的系统名和文件名。")],
    login: Annotated[str | None, typer.Option(help="登录页的完整网址，如 http://10.1.2.3/login。")] = None,
    list_: Annotated[str | None, typer.Option("--list", help="登录后要采集的列表页的完整网址。")] = None,
    account: Annotated[
        str | None, typer.Option(help="保险库里该系统的账号；不写则提示输入，只留在内存里。")
    ] = None,
    title: Annotated[str | None, typer.Option(help="系统的中文名（默认取页面标题）。")] = None,
    dataset: Annotated[str | None, typer.Option(help="数据集名（默认同系统名）。")] = None,
    into: Annotated[Path, typer.Option(help="写到哪个项目目录。")] = Path("."),
    template: Annotated[bool, typer.Option("--template", help="不登录，只写带注释的模板。")] = False,
) -> None:
    """登录一个新系统，看一眼列表页，写出系统声明、声明式机器人和重放测试。"""
    from connectors import HarvestFailure
    from robots.runtime import (
        Asked,
        scaffold_files,
        scaffold_summary,
        scaffold_template,
        scout,
        write_scaffold,
    )
    from settings import load_settings
    from vault import VaultError

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
        raise _fail(f"系统名 {name!r} 只能用小写字母、数字和下划线（以字母开头），如 civil_affairs")
    if template:
        found = scaffold_template(name, login, list_, title)
    elif login is None or list_ is None:
        raise _fail("写出 --login 登录页网址和 --list 列表页网址；连不上系统时用 --template 只写模板")
    else:
        settings = load_settings()
        asked = Asked(name, login, list_, title, account or "ACCOUNT")
        box, typed = (_vault(settings), None) if account else (None, _typed_credentials(name))
        try:
            found = scout(asked, settings, box, typed)
        except HarvestFailure as exc:
            raise _fail(str(exc), exc.exit_code) from exc
        except (ValueError, LookupError, VaultError) as exc:
            raise _fail(str(exc)) from exc
    shown = account or "ACCOUNT"
    try:
        urls = {"login_url": login or "", "list_url": list_ or ""}
        chosen = scaffold_files(found, dataset=dataset, account=shown, **urls)
        written = write_scaffold(into, chosen)
    except FileExistsError as exc:
        raise _fail(str(exc)) from exc
    if account is None and not template:
        add = f"harvest vault add {name} ACCOUNT --username 用户名 --scope 社区"
        console.print(f"先把账号放进保险库：{add}", markup=False, highlight=False)
    for line in scaffold_summary(found, written, shown):
        console.print(line, markup=False, highlight=False)


def _typed_credentials(system: str) -> Credentials:
    """A user name and password typed at the terminal (the password hidden), kept only in memory."""
    from connectors import Credentials
    from vault import Secret

    username = typer.prompt(f"{system} 的用户名")
    password = typer.prompt(f"{system} 的密码", hide_input=True)
    return Credentials(username, Secret(f"{system} password", password))
