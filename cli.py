"""The ``harvest`` command: a thin layer over the packages of this repository."""

from __future__ import annotations

import getpass
import json
import threading
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from sandbox import SPECS, Sandbox, SandboxError, Switches, generate_world
from settings import load_settings
from store import Access, RevealRefused, Run, Snapshot, Store, StoreUnavailable, UnknownDataset, make_engine

app = typer.Typer(
    help="gridharvest: robots that harvest a community's own records into a local snapshot.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@app.callback()
def main() -> None:
    """gridharvest: robots log into the unit's government systems with its own accounts and
    keep a local snapshot of the records those accounts may see.

    Settings come from HARVEST_* environment variables (see README.md).
    """


def _switches(assignments: list[str], systems: list[str]) -> dict[str, Switches]:
    """Parse ``SYSTEM.SWITCH=VALUE`` options; a bad one is a usage error that names the fix."""
    chosen = {code: Switches() for code in systems}
    for text in assignments:
        target, sep, value = text.partition("=")
        code, dot, name = target.partition(".")
        if not (sep and dot) or code not in chosen:
            raise typer.BadParameter(
                f"{text!r}: write SYSTEM.SWITCH=VALUE with SYSTEM one of {', '.join(systems)}",
                param_hint="--set",
            )
        try:
            chosen[code].set_from_text(name, value)
        except ValueError as exc:
            raise typer.BadParameter(f"{text!r}: {exc}".splitlines()[0], param_hint="--set") from exc
    return chosen


@app.command()
def sandbox(
    accounts: Annotated[
        bool, typer.Option("--accounts", help="Print the demo accounts as JSON and exit.")
    ] = False,
    persons: Annotated[int | None, typer.Option(help="Persons to generate [default: settings].")] = None,
    communities: Annotated[int | None, typer.Option(help="Communities [default: settings].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the synthetic data [default: settings].")] = None,
    port: Annotated[
        int | None, typer.Option(help="First port; 0 picks free ports [default: settings].")
    ] = None,
    switch: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="SYSTEM.SWITCH=VALUE",
            help="Turn a behaviour on or off, e.g. --set population.captcha=true "
            "--set civil.fault_500_rate=0.1 --set market.layout_changed=true. Repeatable.",
        ),
    ] = None,
) -> None:
    """Start the simulated government systems (人口 / 民政 / 市场监管) on 127.0.0.1 in the foreground.

    Prints each system's address and the demo accounts (one per system and community);
    press Ctrl+C to stop. The data is synthetic and the same for the same seed.
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
        console.print(f"[red]沙箱启动失败：[/red]{exc}")
        raise typer.Exit(1) from exc
    _print_sandbox(box, len(world.persons))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("正在停止沙箱…")
    finally:
        box.stop()


def _print_sandbox(box: Sandbox, persons: int) -> None:
    systems = Table(title=f"模拟系统（{persons:,} 人）")
    for column in ("系统", "代号", "地址", "开关"):
        systems.add_column(column)
    for system in box.systems.values():
        changed = {
            k: v for k, v in system.switches.model_dump().items() if v != Switches.model_fields[k].default
        }
        systems.add_row(
            system.spec.title, system.code, system.url, ", ".join(f"{k}={v}" for k, v in changed.items())
        )
    console.print(systems)
    logins = Table(title="演示账号")
    for column in ("系统", "账号", "用户名", "密码", "社区"):
        logins.add_column(column)
    for account in box.accounts:
        logins.add_row(
            account.system, account.account, account.username, account.password, account.scope_name
        )
    console.print(logins)
    console.print("按 Ctrl+C 停止。`harvest sandbox --accounts` 以 JSON 输出演示账号。")


def _snapshot() -> Snapshot:
    settings = load_settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        stderr.print(f"还没有快照数据库（{url}）：先运行一次采集，例如 `make demo`。")
        raise typer.Exit(1)
    try:
        return Snapshot(Store(make_engine(url)).engine)
    except StoreUnavailable as exc:
        stderr.print(f"[red]数据库不可用：[/red]{exc}")
        raise typer.Exit(1) from exc


def _access(reveal: bool, reason: str | None, actor: str | None) -> Access:
    access = Access(actor=actor or getpass.getuser(), reveal=reveal, reason=reason or "")
    try:
        access.check()
    except RevealRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--reason") from exc
    return access


def _print_frame(frame: pd.DataFrame, title: str, limit: int) -> None:
    table = Table(
        title=title, caption=f"共 {len(frame)} 条" + (f"，显示前 {limit} 条" if len(frame) > limit else "")
    )
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*("" if pd.isna(v) else str(v) for v in row))
    console.print(table)


RevealOption = Annotated[
    bool, typer.Option("--reveal", help="Show personal data unmasked (needs --reason; audited).")
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Why the full data is needed; written to the audit table.")
]
ActorOption = Annotated[
    str | None, typer.Option("--as", help="Who is reading, for the audit [default: login name].")
]


@app.command()
def runs(limit: Annotated[int, typer.Option(help="How many recent runs.")] = 20) -> None:
    """Recent harvest runs: status, counts, and why a run failed."""
    snapshot = _snapshot()
    with Session(snapshot.engine) as session:
        recent = list(session.exec(select(Run).order_by(Run.started_at.desc()).limit(limit)))  # type: ignore[attr-defined]
    table = Table(title="最近的采集")
    for column in ("开始时间", "机器人", "系统/账号", "社区", "状态", "新增", "变更", "未变", "注销", "说明"):
        table.add_column(column)
    for run in recent:
        table.add_row(
            f"{run.started_at:%m-%d %H:%M}",
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
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. persons.")],
    where: Annotated[
        list[str] | None, typer.Option(metavar="FIELD=VALUE", help="Exact filter; repeatable.")
    ] = None,
    search: Annotated[str, typer.Option(help="Text to find in names, ID numbers, phones, addresses.")] = "",
    scope: Annotated[str | None, typer.Option(help="Only this community.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print (export writes all).")] = 20,
    export: Annotated[Path | None, typer.Option(help="Write the result to a .csv or .xlsx file.")] = None,
    reveal: RevealOption = False,
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """Query one dataset of the snapshot; personal data is masked unless revealed with a reason."""
    access = _access(reveal, reason, actor)
    filters = {}
    for text in where or []:
        field, sep, value = text.partition("=")
        if not sep:
            raise typer.BadParameter(f"{text!r}: write FIELD=VALUE", param_hint="--where")
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
            f"已导出 {len(frame)} 条到 {export}"
            + ("（已脱敏）" if not reveal else "（含完整信息，已记录审计）")
        )
        return
    _print_frame(frame, dataset, limit)


@app.command()
def person(
    id_number: Annotated[
        str, typer.Argument(help="身份证号 (full-width digits and a lower-case x are fine).")
    ],
    reveal: RevealOption = False,
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """Every record about one person across datasets (一人一档)."""
    found = _snapshot().person(id_number, access=_access(reveal, reason, actor))
    if not found:
        console.print("快照中没有这个身份证号的记录。")
        raise typer.Exit(1)
    for dataset, frame in found.items():
        _print_frame(frame, dataset, 50)


@app.command()
def freshness() -> None:
    """How fresh each dataset is: last good harvest, its age, failures since."""
    table = Table(title="数据新鲜度")
    for column in ("数据集", "最近成功采集", "距今(小时)", "采集次数", "此后失败"):
        table.add_column(column)
    for item in _snapshot().freshness():
        last = f"{item.last_good.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if item.last_good else "从未成功"
        age = f"{item.age_hours:.1f}" if item.age_hours is not None else "-"
        table.add_row(item.dataset, last, age, str(item.runs), str(item.failures_since))
    console.print(table)


@app.command()
def purge(
    days: Annotated[
        int | None, typer.Option(help="Older than this many days [default: HARVEST_RETENTION_DAYS].")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Delete gone records and change history older than the retention period (audited)."""
    days = days if days is not None else load_settings().retention_days
    if days is None or days < 1:
        raise typer.BadParameter(
            "say how many days to keep: --days N or HARVEST_RETENTION_DAYS", param_hint="--days"
        )
    counts = Store(_snapshot().engine).purge(days, actor=actor or getpass.getuser())
    console.print("已清理：" + "，".join(f"{name} {count} 条" for name, count in counts.items()))


if __name__ == "__main__":
    app()
