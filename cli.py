"""The ``harvest`` command: a thin layer over the packages of this repository."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import re
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import pandas as pd
import sqlalchemy as sa
import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.core import TyperGroup

from connectors import ChromiumMissing, Credentials, HarvestFailure
from desk import create_app as create_desk
from desk._cli import app as desk_cli
from machine import exposed_paths, local_time, zone_label
from robots.runtime import (
    SAMPLE,
    Asked,
    Harvester,
    RichProgress,
    RobotSpec,
    RunReport,
    broken,
    configure_logging,
    discover,
    expected_beside,
    findings,
    recorded,
    run_blocking,
    sample_table,
    scaffold_files,
    scaffold_summary,
    scaffold_template,
    scout,
    verdict,
    write_expected,
    write_scaffold,
)
from sandbox import SPECS, Sandbox, SandboxError, Switches, generate_world
from scheduler import HarvestScheduler, JobState, SchedulerBusy, describe
from settings import ConfigurationError, Settings, load_settings
from store import (
    Access,
    RevealRefused,
    Run,
    Snapshot,
    Store,
    StoreUnavailable,
    UnknownDataset,
    create_tables,
    make_engine,
)
from vault import NoVault, Secret, Vault, VaultError
from vault._cli import app as vault_cli

SIGNAL_POLL_S = 0.5  # how often a foreground command that waits for Ctrl+C looks for it


class _Harvest(TyperGroup):
    """The one boundary where a configuration that cannot work becomes one line naming the fix.

    A malformed setting and a database that cannot be opened or written are the unit's to mend,
    not a bug of ours: one red line and exit 2, from every command, never a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigurationError, StoreUnavailable) as exc:
            raise _fail(str(exc)) from exc
        except sa.exc.OperationalError as exc:
            raise _fail(_database_problem(exc)) from exc


app = typer.Typer(
    cls=_Harvest,
    help="gridharvest：把社区自己的记录采集到本地快照的机器人。",
    no_args_is_help=True,
    add_completion=False,
    # Plain help text: option help says "[default: …]", which rich markup would swallow as a tag.
    rich_markup_mode=None,
)
app.add_typer(vault_cli, name="vault")
app.add_typer(desk_cli, name="desk")
console = Console()
stderr = Console(stderr=True)


@app.callback()
def main() -> None:
    """gridharvest：机器人用本单位自己的账号登录政务系统，把这些账号能看到的记录保存为本地快照。

    设置来自 HARVEST_* 环境变量（见 README.md）。
    """


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as one red line on stderr, never read as markup; the exit to raise."""
    stderr.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _database_problem(exc: sa.exc.OperationalError) -> str:
    url = sa.make_url(load_settings().resolved_database_url)
    reason = next(iter(str(exc.orig or exc).splitlines()), "")
    if "readonly" in reason:
        path = (url.database or "").removeprefix("file:")  # a SQLite URI names its file so
        return (
            f"数据库文件 {path} 是只读的：让运行 harvest 的用户能写这个文件和它所在的文件夹"
            "（chown 或 chmod u+w），或用 HARVEST_DATABASE_URL 换一个可写的数据库"
        )
    shown = url.set(query={}).render_as_string(hide_password=True)
    return f"数据库 {shown} 无法使用（{reason}）：检查 HARVEST_DATABASE_URL、HARVEST_DATA_DIR 和数据库服务"


def _row(table: Table, *cells: str | Text) -> None:
    """Add a row whose text is shown as it is: a value like a[href="/logout/"] is not markup."""
    table.add_row(*(escape(cell) if isinstance(cell, str) else cell for cell in cells))


def _red(text: str) -> Text:
    return Text(text, style="red")


def _clock(settings: Settings, when: dt.datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    """A time for a table cell in the unit's zone; the column's title names the zone (``_zoned``)."""
    return "-" if when is None else f"{local_time(when, settings.timezone):{fmt}}"


def _zoned(title: str, settings: Settings) -> str:
    return f"{title}（{zone_label(settings.timezone)}）"


def _switches(assignments: list[str], systems: list[str]) -> dict[str, Switches]:
    """Parse ``SYSTEM.SWITCH=VALUE`` options; a bad one is a usage error that names the fix."""
    chosen = {code: Switches() for code in systems}
    for text in assignments:
        target, sep, value = text.partition("=")
        code, dot, name = target.partition(".")
        if not (sep and dot) or code not in chosen:
            raise typer.BadParameter(
                f"{text!r}：写成 SYSTEM.SWITCH=VALUE，SYSTEM 是 {', '.join(systems)} 之一",
                param_hint="--set",
            )
        try:
            chosen[code].set_from_text(name, value)
        except ValueError as exc:
            raise typer.BadParameter(f"{text!r}：{exc}".splitlines()[0], param_hint="--set") from exc
    return chosen


@app.command()
def sandbox(
    accounts: Annotated[bool, typer.Option("--accounts", help="以 JSON 输出演示账号后退出。")] = False,
    persons: Annotated[int | None, typer.Option(help="生成多少人（默认：HARVEST_SANDBOX_PERSONS）。")] = None,
    communities: Annotated[
        int | None, typer.Option(help="多少个社区（默认：HARVEST_SANDBOX_COMMUNITIES）。")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="模拟数据的随机种子（默认：HARVEST_SANDBOX_SEED）。")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="第一个端口；0 表示挑空闲端口（默认：HARVEST_SANDBOX_PORT）。")
    ] = None,
    switch: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SYSTEM.SWITCH=VALUE",
            help="打开或关闭一种行为，例如 --set population.captcha=true "
            "--set civil.fault_500_rate=0.1 --set market.layout_changed=true。可重复。",
        ),
    ] = None,
) -> None:
    """在 127.0.0.1 上前台启动模拟政务系统（人口 / 民政 / 市场监管 等）。

    输出每个系统的地址和演示账号（每个系统、每个社区一个）；按 Ctrl+C 停止。
    数据是合成的，同一个种子生成的数据相同。
    """
    settings = load_settings()
    with stderr.status("正在生成模拟数据…", spinner="dots"):
        world = generate_world(
            seed=settings.sandbox_seed if seed is None else seed,
            persons=settings.sandbox_persons if persons is None else persons,
            communities=settings.sandbox_communities if communities is None else communities,
        )
    box = Sandbox(
        world,
        host=settings.sandbox_host,
        port=settings.sandbox_port if port is None else port,
        switches=_switches(switch or [], [spec.code for spec in SPECS]),
    )
    if accounts:
        typer.echo(json.dumps([a.as_dict() for a in box.accounts], ensure_ascii=False, indent=2))
        return
    try:
        box.start()
    except SandboxError as exc:
        raise _fail(f"沙箱启动失败：{exc}", 1) from exc
    stop = _stop_on_signals()  # before printing: Ctrl+C as soon as the addresses show stops the servers
    try:
        _print_sandbox(box, len(world.persons))
        _until_signalled(stop)
        console.print("正在停止沙箱…")
    finally:
        box.stop()


def _stop_on_signals() -> threading.Event:
    """An event SIGTERM or SIGINT sets, whatever this process inherited: a command started in the
    background of a script has SIGINT ignored, and Python then leaves Ctrl+C without a handler."""
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    return stop


def _until_signalled(stop: threading.Event) -> None:
    """Wait for ``stop``, or for Ctrl+C, waking twice a second: the kernel may hand a signal to a
    server thread, and a main thread blocked in an untimed wait would never run its handler."""
    while not stop.wait(SIGNAL_POLL_S):
        pass


def _print_sandbox(box: Sandbox, persons: int) -> None:
    systems = Table(title=f"模拟系统（{persons:,} 人）")
    for column in ("系统", "代号", "地址", "开关"):
        systems.add_column(column)
    for system in box.systems.values():
        changed = {
            k: v for k, v in system.switches.model_dump().items() if v != Switches.model_fields[k].default
        }
        _row(
            systems,
            system.spec.title,
            system.code,
            system.url,
            ", ".join(f"{k}={v}" for k, v in changed.items()),
        )
    console.print(systems)
    logins = Table(title="演示账号")
    for column in ("系统", "账号", "用户名", "密码", "社区"):
        logins.add_column(column)
    for account in box.accounts:
        _row(logins, account.system, account.account, account.username, account.password, account.scope_name)
    console.print(logins)
    console.print("按 Ctrl+C 停止。`harvest sandbox --accounts` 以 JSON 输出演示账号。")


def _snapshot() -> Snapshot:
    settings = load_settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise _fail(f"还没有快照数据库（{url}）：先运行一次采集，例如 `make demo`。", 1)
    return Snapshot(_store(settings).engine)


def _access(reveal: bool, reason: str | None, actor: str | None) -> Access:
    access = Access(actor=actor or getpass.getuser(), reveal=reveal, reason=reason or "")
    try:
        access.check()
    except RevealRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--reason") from exc
    return access


# The snapshot's own columns beside a record's fields, headed as the exports head them.
SNAPSHOT_HEADERS = {"scope": "社区", "flags": "数据标记"}


def _headers(snapshot: Snapshot) -> dict[str, dict[str, str]]:
    """Each dataset's column headers for staff, by dataset: its fields' titles, recorded with the data
    (what the desk and the exports head them by, even once the robot that harvested them is gone)."""
    return {info.name: SNAPSHOT_HEADERS | json.loads(info.labels) for info in snapshot.datasets()}


def _print_frame(frame: pd.DataFrame, title: str, limit: int, headers: dict[str, str]) -> None:
    table = Table(
        title=escape(title),
        caption=f"共 {len(frame)} 条" + (f"，显示前 {limit} 条" if len(frame) > limit else ""),
    )
    for column in map(str, frame.columns):
        table.add_column(escape(headers.get(column, column)))
    for row in frame.head(limit).itertuples(index=False):
        _row(table, *("" if pd.isna(v) else str(v) for v in row))
    console.print(table)


RevealOption = Annotated[
    bool, typer.Option("--reveal", help="不脱敏显示个人信息（须同时给 --reason；记入审计）。")
]
ReasonOption = Annotated[str | None, typer.Option(help="为什么需要完整信息；写入审计表。")]
ActorOption = Annotated[str | None, typer.Option("--as", help="谁在查看，记入审计（默认：登录名）。")]


@app.command()
def runs(limit: Annotated[int, typer.Option(help="显示最近多少次采集。")] = 20) -> None:
    """最近的采集：状态、各项计数，以及失败的原因。"""
    settings = load_settings()
    snapshot = _snapshot()
    with Session(snapshot.engine) as session:
        recent = list(session.exec(select(Run).order_by(Run.started_at.desc()).limit(limit)))  # type: ignore[attr-defined]
    table = Table(title="最近的采集")
    counts = ("新增", "变更", "未变", "注销")
    for column in (_zoned("开始", settings), "机器人", "系统/账号", "社区", "状态", *counts, "说明"):
        table.add_column(column)
    for run in recent:
        _row(
            table,
            _clock(settings, run.started_at),
            run.robot,
            f"{run.system}/{run.account}",
            run.scope,
            run.status,
            str(run.new),
            str(run.changed),
            str(run.unchanged),
            str(run.gone),
            run.message or "",
        )
    console.print(table)


@app.command()
def query(
    dataset: Annotated[str, typer.Argument(help="数据集名，例如 persons。")],
    where: Annotated[list[str] | None, typer.Option(metavar="FIELD=VALUE", help="精确筛选；可重复。")] = None,
    search: Annotated[str, typer.Option(help="在姓名、身份证号、电话、住址中查找的文字。")] = "",
    scope: Annotated[str | None, typer.Option(help="只看这个社区。")] = None,
    limit: Annotated[int, typer.Option(help="显示多少行（导出写出全部）。")] = 20,
    export: Annotated[Path | None, typer.Option(help="把结果写入 .csv 或 .xlsx 文件。")] = None,
    reveal: RevealOption = False,
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """查询快照中的一个数据集；个人信息默认脱敏，说明理由才显示完整信息。"""
    access = _access(reveal, reason, actor)
    filters = {}
    for text in where or []:
        field, sep, value = text.partition("=")
        if not sep:
            raise typer.BadParameter(f"{text!r}：写成 FIELD=VALUE", param_hint="--where")
        filters[field] = value
    snapshot = _snapshot()
    try:
        frame = snapshot.query(dataset, where=filters, search=search, scope=scope, access=access)
    except (UnknownDataset, KeyError) as exc:
        raise typer.BadParameter(str(exc).strip("'\""), param_hint="DATASET / --where") from exc
    if export is not None:
        try:
            snapshot.export(frame, export, dataset=dataset, access=access)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--export") from exc
        console.print(
            f"已导出 {len(frame)} 条到 {escape(str(export))}"
            + ("（已脱敏）" if not reveal else "（含完整信息，已记录审计）")
        )
        return
    _print_frame(frame, dataset, limit, _headers(snapshot)[dataset])


@app.command()
def person(
    id_number: Annotated[str, typer.Argument(help="身份证号（全角数字、小写 x 也可以）。")],
    reveal: RevealOption = False,
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """一个人在各数据集中的全部记录（一人一档）。"""
    snapshot = _snapshot()
    found = snapshot.person(id_number, access=_access(reveal, reason, actor))
    if not found:
        console.print("快照中没有这个身份证号的记录。")
        raise typer.Exit(1)
    headers = _headers(snapshot)
    for dataset, frame in found.items():
        _print_frame(frame, dataset, 50, headers[dataset])


@app.command()
def freshness() -> None:
    """各数据集有多新鲜：最近一次成功采集、距今多久、此后失败几次。"""
    settings = load_settings()
    table = Table(title="数据新鲜度")
    for column in ("数据集", _zoned("最近成功采集", settings), "距今(小时)", "采集次数", "此后失败"):
        table.add_column(column)
    for item in _snapshot().freshness():
        last = _clock(settings, item.last_good, "%Y-%m-%d %H:%M") if item.last_good else "从未成功"
        age = f"{item.age_hours:.1f}" if item.age_hours is not None else "-"
        _row(table, item.dataset, last, age, str(item.runs), str(item.failures_since))
    console.print(table)


@app.command()
def purge(
    days: Annotated[
        int | None, typer.Option(help="清理早于这么多天的（默认：HARVEST_RETENTION_DAYS）。")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """删除早于保留期的已注销记录和变更历史（记入审计）。"""
    days = days if days is not None else load_settings().retention_days
    if days is None or days < 1:
        raise typer.BadParameter("说明保留多少天：--days N 或 HARVEST_RETENTION_DAYS", param_hint="--days")
    counts = Store(_snapshot().engine).purge(days, actor=actor or getpass.getuser())
    console.print(escape("已清理：" + "，".join(f"{name} {count} 条" for name, count in counts.items())))


# ---- robots: list, run, demo ---------------------------------------------------------------------

EXIT_HELP = (
    "退出码：0 成功；1 机器人意外失败；2 用法或配置有误；3 bad_credentials 或 locked（账号已停用）；"
    "4 needs_human；5 layout_changed；6 system_unavailable；7 disk_full（本机磁盘已满）；"
    "8 account_busy（账号正被另一次采集使用）。多次采集时，取第一次失败的退出码。"
)


def _store(settings: Settings) -> Store:
    """The store; a database that cannot be opened or written reaches the boundary as one line."""
    try:
        return Store(make_engine(settings.resolved_database_url))
    except OSError as exc:  # its folder cannot be made, or the path is not a file
        raise _fail(
            f"数据库路径 {exc.filename} 无法使用（{exc.strerror}）："
            "检查 HARVEST_DATA_DIR 或 HARVEST_DATABASE_URL"
        ) from exc


def _vault(settings: Settings) -> Vault:
    try:
        return Vault.open(settings, interactive=sys.stdin.isatty())
    except VaultError as exc:
        raise _fail(f"保险库：{exc}", 1) from exc


def _robots() -> dict[str, RobotSpec]:
    """The robots that load; each robot file that does not is one line on stderr, and the rest run."""
    robots_ = discover()
    for why in broken().values():
        stderr.print(
            f"机器人文件无法加载，它的机器人不会运行：{why}", style="red", markup=False, highlight=False
        )
    return robots_


def _print_broken() -> None:
    """Robot files that do not import, by name, each with where and why (the other robots still run)."""
    if not broken():
        return
    table = Table(title="无法加载的机器人文件（修正后它们的机器人才会运行；其余照常）")
    for column in ("模块", "原因"):
        table.add_column(column)
    for module, why in broken().items():
        _row(table, module, _red(why))
    console.print(table)


def _harvest(settings: Settings, plan: list[tuple[RobotSpec, str]], *, parallel: int = 1) -> list[RunReport]:
    """Run every (robot, account) of ``plan`` with a progress display; accounts in parallel."""
    configure_logging(settings, level="WARNING")
    store, vault = _store(settings), _vault(settings)

    async def go(progress: RichProgress) -> list[RunReport]:
        async with Harvester(settings, store, vault, hooks=[progress], interactive=sys.stdin.isatty()) as h:
            gate = asyncio.Semaphore(parallel)

            async def one(robot: RobotSpec, account: str) -> RunReport:
                async with gate:
                    return await h.run(robot, account)

            return list(await asyncio.gather(*(one(robot, account) for robot, account in plan)))

    with RichProgress(console) as progress:
        try:
            return run_blocking(lambda: go(progress))
        except ChromiumMissing as exc:
            raise _fail(str(exc), 1) from exc


def _print_reports(reports: list[RunReport]) -> int:
    table = Table(title="采集结果")
    for column in ("数据集", "系统/账号", "状态", "记录", "新增", "变更", "注销", "秒"):
        table.add_column(
            column, justify="right" if column in ("记录", "新增", "变更", "注销", "秒") else "left"
        )
    for r in reports:
        status = Text("ok", style="green") if r.status == "ok" else _red(r.kind or r.status)
        _row(
            table,
            r.dataset,
            f"{r.system}/{r.account}",
            status,
            f"{r.records:,}",
            str(r.new),
            str(r.changed),
            str(r.gone),
            f"{r.seconds:.1f}",
        )
    console.print(table)
    for r in reports:
        if r.status != "ok":
            stderr.print(
                f"[red]{escape(f'{r.robot} · {r.system}/{r.account}: {r.kind}')}[/red] {escape(r.message)}",
                soft_wrap=True,  # one line, however long: a log watcher or grep reads it whole
            )
            if r.artifacts:
                stderr.print(f"  现场证据：{r.artifacts}", markup=False, highlight=False)
    return next((r.exit_code for r in reports if r.exit_code), 0)


@app.command("list")
def list_() -> None:
    """系统、机器人和账号，以及每个账号最近一次采集和结果；无法加载的机器人文件也列出。"""
    settings = load_settings()
    robots_ = discover()
    systems = {robot.system.name: robot.system for robot in robots_.values()}
    table = Table(title="系统")
    for column in ("代号", "名称", "网址", "礼貌限速"):
        table.add_column(column)
    for system in systems.values():
        p = system.politeness
        url = settings.system_urls.get(system.name, system.base_url)
        _row(table, system.name, system.title, url, f"同时 {p.concurrency} 个，每秒 {p.rate:g} 次")
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
    with Session(_store(settings).engine) as session:
        runs_ = session.exec(select(Run).order_by(Run.started_at))  # type: ignore[arg-type]
        return {(run.system, run.account): run for run in runs_}


@app.command(epilog=EXIT_HELP)
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
    username = typer.prompt(f"{system} 的用户名")
    password = typer.prompt(f"{system} 的密码", hide_input=True)
    return Credentials(username, Secret(f"{system} password", password))


@app.command(epilog=EXIT_HELP)
def run(
    robot: Annotated[str, typer.Argument(help="机器人名，即 `harvest list` 显示的名字。")],
    account: Annotated[str | None, typer.Option(help="用机器人所属系统的这个账号采集。")] = None,
    all_: Annotated[bool, typer.Option("--all", help="用机器人所属系统的每个账号采集。")] = False,
) -> None:
    """立即运行一个机器人：登录（或沿用保存的会话）、采集，全部顺利才发布。"""
    settings = load_settings()
    spec = _robot_named(robot)
    if (account is None) == (not all_):
        raise typer.BadParameter("写 --account ACCOUNT 或 --all", param_hint="--account / --all")
    accounts = _accounts(settings, spec, account)
    reports = _harvest(settings, [(spec, name) for name in accounts])
    raise typer.Exit(_print_reports(reports))


def _robot_named(robot: str) -> RobotSpec:
    """The robot called ``robot``, or a usage error naming the robots there are."""
    robots_ = _robots()
    spec = robots_.get(robot)
    if spec is None:
        unloaded = f"；无法加载的文件：{', '.join(broken())}（见 `harvest list`）" if broken() else ""
        raise typer.BadParameter(
            f"没有机器人 {robot!r}；现有机器人：{', '.join(robots_) or '无'}{unloaded}", param_hint="ROBOT"
        )
    return spec


def _accounts(settings: Settings, spec: RobotSpec, account: str | None) -> list[str]:
    """``[account]`` if the vault holds it for the robot's system (all it holds if None), else refused."""
    known = [a.account for a in _vault(settings).accounts(spec.system.name)]
    accounts = known if account is None else [account]
    if not accounts or (account is not None and account not in known):
        raise typer.BadParameter(
            f"保险库里没有 {spec.system.name} 的账号 {account or ''}（已有：{', '.join(known) or '无'}）；"
            f"添加一个：`harvest vault add {spec.system.name} ACCOUNT --username U --scope S`",
            param_hint="--account",
        )
    return accounts


T = TypeVar("T")


def _unpublished(
    settings: Settings,
    vault: Vault,
    spec: RobotSpec,
    account: str,
    command: tuple[str, str],
    work: Callable[[Harvester], Awaitable[T]],
) -> T:
    """``work`` in a Harvester that holds the account's lease as ``harvest NAME``, a spinner saying
    ``正在VERB …`` meanwhile, for ``command = (NAME, VERB)``: the walks of `check` and `record`, which
    publish nothing. A missing Chromium is one red line."""
    name, verb = command
    configure_logging(settings, level="WARNING")
    store = _store(settings)

    async def go() -> T:
        interactive, holder = sys.stdin.isatty(), f"harvest {name}"
        async with Harvester(settings, store, vault, interactive=interactive, holder=holder) as h:
            return await work(h)

    try:
        with stderr.status(f"正在{verb} {spec.name} · {spec.system.name}/{account}…", spinner="dots"):
            return run_blocking(go)
    except ChromiumMissing as exc:
        raise _fail(str(exc), 1) from exc


@app.command(epilog=EXIT_HELP)
def check(
    robot: Annotated[str, typer.Argument(help="机器人名，即 `harvest list` 显示的名字。")],
    account: Annotated[str, typer.Option(help="用机器人所属系统的这个账号登录。")],
    pages: Annotated[int, typer.Option(min=0, help="读前几页；0 表示读完整个列表。")] = 2,
    sample: Annotated[int, typer.Option(min=0, help="显示多少条记录（已脱敏）。")] = SAMPLE,
) -> None:
    """运行前的检查：登录、读前几页、校验记录，脱敏显示样例，并与系统显示的总数核对；不发布任何数据。

    登录、停用账号和允许采集的时段与 `harvest run` 相同（账号锁定规则照样适用）；退出码也相同。
    """
    settings = load_settings()
    spec = _robot_named(robot)
    _accounts(settings, spec, account)
    trial = _unpublished(
        settings,
        _vault(settings),
        spec,
        account,
        ("check", "检查"),
        lambda h: h.trial(spec, account, pages=pages or None),
    )
    if trial.records:
        console.print(sample_table(spec, trial, sample))
    for line in findings(spec, trial, settings):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if trial.exit_code:
        raise _fail(verdict(spec, trial), trial.exit_code)
    console.print(verdict(spec, trial), markup=False, highlight=False, soft_wrap=True)


@app.command(epilog=EXIT_HELP)
def record(
    robot: Annotated[str, typer.Argument(help="机器人名，即 `harvest list` 显示的名字。")],
    account: Annotated[str, typer.Option(help="用机器人所属系统的这个账号登录。")],
    out: Annotated[
        Path | None, typer.Option(help="录像文件（默认 tests/cassettes/ROBOT.cassette）。")
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="不加密（gzip JSON）：只用于沙箱那样的合成数据。")
    ] = False,
) -> None:
    """录制一次完整采集的应答，供离线回放测试（robots.testing）：登录、读完并校验整个列表，不发布任何数据。

    录像旁边写下读到的记录（ROBOT.expected.jsonl）。两者默认用保险库密钥加密：录像是个人信息的副本。
    登录规则、停用账号和退出码与 `harvest run` 相同。
    """
    settings = load_settings()
    spec = _robot_named(robot)
    _accounts(settings, spec, account)
    path = out or Path("tests/cassettes") / f"{spec.name}.cassette"
    vault = _vault(settings)
    trial, cassette = _unpublished(
        settings, vault, spec, account, ("record", "录制"), lambda h: recorded(h, spec, account)
    )
    if trial.exit_code:
        failed = f"{spec.name} · {spec.system.name}/{account}: {trial.kind}：{trial.message}（没有写录像）"
        raise _fail(failed, trial.exit_code)
    seal = None if plain else vault.seal
    expected = expected_beside(path)
    cassette.save(path, seal=seal)
    write_expected(expected, trial.records, seal=seal)
    if plain:
        stderr.print(
            "--plain：录像和预期记录都没有加密，只可用于合成数据（如沙箱）；真实系统的录像是个人信息的副本",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"已录制 {spec.name}：{trial.pages} 页、{len(trial.records)} 条记录、"
        f"{len(cassette.entries)} 个应答 → {path}；预期记录 → {expected}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command(epilog=EXIT_HELP)
def demo(
    persons: Annotated[
        int | None, typer.Option(help="沙箱中的人数（默认：HARVEST_SANDBOX_PERSONS）。")
    ] = None,
) -> None:
    """启动沙箱，把它的演示账号放进保险库，用每个演示账号运行每个演示机器人。"""
    settings = load_settings()
    with stderr.status("正在生成模拟数据…", spinner="dots"):
        world = generate_world(
            seed=settings.sandbox_seed,
            persons=settings.sandbox_persons if persons is None else persons,
            communities=settings.sandbox_communities,
        )
    box = Sandbox(world, host=settings.sandbox_host, port=settings.sandbox_port)
    try:
        box.start()
    except SandboxError:
        box = Sandbox(world, host=settings.sandbox_host, port=0).start()  # the usual ports are taken
    try:
        urls = {code: system.url for code, system in box.systems.items()}
        settings = settings.model_copy(update={"system_urls": {**urls, **settings.system_urls}})
        _register_demo_accounts(settings, box)
        demo_robots = [r for r in _robots().values() if r.module.startswith("robots.sandbox_")]
        plan = [(r, a.account) for r in demo_robots for a in box[r.system.name].accounts]
        reports = _harvest(settings, plan, parallel=3)
    finally:
        box.stop()
    code = _print_reports(reports)
    console.print(
        "接下来：`harvest list` · `harvest runs` · `harvest freshness` · "
        "`harvest query persons --search 王` · `harvest person <身份证号>` · "
        "用 `harvest sandbox` 亲自浏览模拟系统 · "
        "查询台：先 `harvest desk add-user admin --role admin`，再 `harvest serve`",
        markup=False,
    )
    raise typer.Exit(code)


def _register_demo_accounts(settings: Settings, box: Sandbox) -> None:
    """Put the sandbox's demo accounts in the vault (creating the vault and its key if needed)."""
    try:
        vault = Vault.open(settings)
    except NoVault:
        vault = Vault.init(settings)
        console.print(f"已为演示账号建立保险库，密钥在 {settings.resolved_vault_key_file}", markup=False)
    except VaultError as exc:
        raise _fail(f"保险库：{exc}", 1) from exc
    known = {(a.system, a.account): a for a in vault.accounts()}
    for account in box.accounts:
        info = known.get((account.system, account.account))
        if info is None:
            account.enroll(vault)
        elif info.status == "parked":
            vault.set(account.system, account.account, password=account.password)


# ---- the scheduler ---------------------------------------------------------------------------------


@app.command()
def schedule(
    list_: Annotated[bool, typer.Option("--list", help="列出每个任务、下次运行时间和上次结果。")] = False,
) -> None:
    """在前台运行调度器：每个机器人 × 账号按各自的 cron 运行，直到 SIGTERM 或 Ctrl+C。

    收到 SIGTERM 后不再接新任务，正在运行的机器人有 HARVEST_STOP_TIMEOUT_S 秒收尾，
    之后取消（不发布任何数据）。每个数据目录只能运行一个调度器。
    """
    settings = load_settings()
    if list_:
        _print_jobs(settings)
        return
    configure_logging(settings)
    try:
        daemon = HarvestScheduler(settings)
        daemon.start()
    except (SchedulerBusy, VaultError) as exc:
        raise _fail(f"调度器：{exc}", 1) from exc
    stop = _stop_on_signals()
    _robots()  # the scheduler planned the robots that load: say which files it left out
    console.print(f"调度器已启动，共 {len(daemon.jobs)} 个任务；SIGTERM 或 Ctrl+C 停止。")
    _until_signalled(stop)
    daemon.stop()


def _print_jobs(settings: Settings) -> None:
    states = _job_states(_store(settings).engine)
    table = Table(title="计划任务")
    for column in ("任务", "cron", _zoned("下次运行", settings), "上次结果"):
        table.add_column(column)
    for job in describe(settings, _vault(settings)):
        state = states.get(job["job"])
        last = Text((state.last_status or "") if state else "从未运行")
        if state and state.kind:
            last.append(f"（等待中：{state.kind}）", style="red")
        _row(table, job["job"], job["cron"], _clock(settings, job["next_run"], "%Y-%m-%d %H:%M"), last)
    console.print(table)
    _print_broken()


def _job_states(engine: Engine) -> dict[str, JobState]:
    create_tables(engine, [JobState.__table__])  # type: ignore[list-item]
    with Session(engine) as session:
        return {state.key: state for state in session.exec(select(JobState))}


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="机器可读的输出，供监控用。")] = False,
) -> None:
    """每个数据集一行：系统、账号数、最近成功采集、距今、下次运行、健康状况；无法加载的机器人文件也列出。"""
    settings = load_settings()
    jobs = describe(settings, _vault(settings))
    engine = _store(settings).engine
    states = _job_states(engine)
    fresh = {item.dataset: item for item in Snapshot(engine).freshness()}
    rows: list[dict[str, Any]] = []
    for dataset in sorted({job["dataset"] for job in jobs}):
        mine = [job for job in jobs if job["dataset"] == dataset]
        item = fresh.get(dataset)
        problems = sorted({s.kind for j in mine if (s := states.get(j["job"])) and s.kind})
        stale = item is None or item.age_hours is None or item.age_hours > settings.max_age_hours
        rows.append(
            {
                "dataset": dataset,
                "system": mine[0]["system"],
                "accounts": len({job["account"] for job in mine}),
                "last_good": item.last_good if item else None,
                "age_hours": round(item.age_hours, 1) if item and item.age_hours is not None else None,
                "next_run": min(job["next_run"] for job in mine),
                "health": ", ".join(problems) or ("stale" if stale else "ok"),
            }
        )
    if as_json:
        # Times in the unit's zone with their offset; a robot file that does not load is a row too,
        # so monitoring that watches "health" sees it.
        for row in rows:
            for key in ("last_good", "next_run"):
                row[key] = row[key] and local_time(row[key], settings.timezone).isoformat()
        rows += [{"module": module, "health": "broken", "error": why} for module, why in broken().items()]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="状态")
    last_good, next_run = _zoned("最近成功采集", settings), _zoned("下次运行", settings)
    for column in ("数据集", "系统", "账号数", last_good, "距今(小时)", next_run, "健康"):
        table.add_column(column)
    for row in rows:
        _row(
            table,
            row["dataset"],
            row["system"],
            str(row["accounts"]),
            _clock(settings, row["last_good"]) if row["last_good"] else "从未",
            "-" if row["age_hours"] is None else str(row["age_hours"]),
            _clock(settings, row["next_run"]),
            row["health"] if row["health"] == "ok" else _red(row["health"]),
        )
    console.print(table)
    _print_broken()
    _warn_exposed(settings)


def _warn_exposed(settings: Settings) -> None:
    """One line when others on this machine can read the data dir: it holds personal data (PIPL)."""
    exposed = exposed_paths(settings.data_dir)
    if exposed:
        more = f" 等 {len(exposed)} 处" if len(exposed) > 3 else ""
        shown = "、".join(str(path) for path in exposed[:3]) + more
        stderr.print(
            f"警告：数据目录中 {shown} 其他用户可以读取，其中有个人信息：请运行 "
            f"`chmod -R go-rwx {settings.data_dir}`（新文件本就只有属主可读）",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="监听地址（默认：HARVEST_DESK_HOST，127.0.0.1）。")] = None,
    port: Annotated[int | None, typer.Option(help="端口（默认：HARVEST_DESK_PORT，8700）。")] = None,
) -> None:
    """运行查询台：工作人员查询快照的中文网页，个人信息脱敏，查询记入审计。

    查询台账号用 `harvest desk add-user` 建立。要在本机以外使用，请放在同一台主机的 HTTPS 反向代理之后
    （哪些代理的 X-Forwarded-For 可信由 HARVEST_DESK_TRUSTED_PROXIES 决定）；经 HTTPS 访问时会话
    cookie 带 Secure。按 Ctrl-C 停止。
    """
    settings = load_settings()
    configure_logging(settings)
    host, port = host or settings.desk_host, settings.desk_port if port is None else port
    try:
        desk = create_desk(settings)
    except ValueError as exc:  # a damaged desk.key or an impossible HARVEST_DESK_* value
        raise _fail(f"查询台无法启动：{exc}") from exc
    if not desk.state.desk.staff.users():
        stderr.print("还没有查询台账号：先建一个  harvest desk add-user NAME --role admin", markup=False)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise _fail(
            f"无法在 {host}:{port} 监听（{exc.strerror}）：用 --port 或 HARVEST_DESK_PORT 换一个端口"
        ) from exc
    console.print(f"查询台（社区数据查询）：http://{host}:{port}/", markup=False)
    # uvicorn stops gracefully on these, then raises the signal again to the handler it found:
    # a quiet one, so a stop asked for ends with exit code 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.run(
        desk,
        host=host,
        port=port,
        access_log=False,  # its lines carry query strings: what staff searched for
        log_level="warning",
        # X-Forwarded-For and -Proto only from the proxies named: believed from anyone else, it lets a
        # client pick the address that the audit records and that login throttling counts.
        proxy_headers=bool(settings.desk_trusted_proxies),
        forwarded_allow_ips=settings.desk_trusted_proxies,
    )


if __name__ == "__main__":
    app()
