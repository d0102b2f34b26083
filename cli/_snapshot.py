"""Commands that read the snapshot: `harvest runs`, `query`, `person`, `freshness`, `purge`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli._common import _clock, _fail, _row, _store, _zoned, console

if TYPE_CHECKING:
    import pandas as pd

    from store import Access, Snapshot

commands = typer.Typer()


def _snapshot() -> Snapshot:
    from settings import load_settings
    from store import Snapshot

    settings = load_settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise _fail(f"还没有快照数据库（{url}）：先运行一次采集，例如 `make demo`。", 1)
    return Snapshot(_store(settings).engine)


def _access(reveal: bool, reason: str | None, actor: str | None) -> Access:
    from store import Access, RevealRefused

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
    import pandas as pd

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


@commands.command()
def runs(limit: Annotated[int, typer.Option(help="显示最近多少次采集。")] = 20) -> None:
    """最近的采集：状态、各项计数，以及失败的原因。"""
    from sqlmodel import Session, select

    from settings import load_settings
    from store import Run

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


@commands.command()
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
    from store import UnknownDataset

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
        selection = {"where": filters, "search": search, "scope": scope}
        _export(snapshot, frame, export, dataset, access, selection)
        return
    _print_frame(frame, dataset, limit, _headers(snapshot)[dataset])


def _export(
    snapshot: Snapshot,
    frame: pd.DataFrame,
    path: Path,
    dataset: str,
    access: Access,
    selection: dict[str, object],
) -> None:
    """Write the export and say on its summary line how fresh its data is (a .csv cannot say it inside)."""
    from settings import load_settings
    from store import freshness_text

    zone = load_settings().timezone
    try:
        snapshot.export(
            frame, path, dataset=dataset, access=access, selection=selection, titles=_titles(), zone=zone
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--export") from exc
    console.print(
        f"已导出 {len(frame)} 条到 {escape(str(path))}"
        + ("（含完整信息，已记录审计）" if access.reveal else "（已脱敏）")
        + f"；{freshness_text(snapshot.harvested_at(dataset), zone)}"
    )


def _titles() -> dict[str, str]:
    """The datasets' titles for staff (人口信息), from the robots; none when a robot file is broken."""
    from robots.runtime import RobotDeclarationError, dataset_titles

    try:
        return dataset_titles()
    except RobotDeclarationError:
        return {}


@commands.command()
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


@commands.command()
def freshness() -> None:
    """各数据集有多新鲜：最近一次成功采集、距今多久、此后失败几次。"""
    from settings import load_settings

    settings = load_settings()
    table = Table(title="数据新鲜度")
    for column in ("数据集", _zoned("最近成功采集", settings), "距今(小时)", "采集次数", "此后失败"):
        table.add_column(column)
    for item in _snapshot().freshness():
        last = _clock(settings, item.last_good, "%Y-%m-%d %H:%M") if item.last_good else "从未成功"
        age = f"{item.age_hours:.1f}" if item.age_hours is not None else "-"
        _row(table, item.dataset, last, age, str(item.runs), str(item.failures_since))
    console.print(table)


@commands.command()
def purge(
    days: Annotated[
        int | None, typer.Option(help="清理早于这么多天的（默认：HARVEST_RETENTION_DAYS）。")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """删除早于保留期的已注销记录和变更历史（记入审计）。"""
    from settings import load_settings
    from store import Store

    days = days if days is not None else load_settings().retention_days
    if days is None or days < 1:
        raise typer.BadParameter("说明保留多少天：--days N 或 HARVEST_RETENTION_DAYS", param_hint="--days")
    counts = Store(_snapshot().engine).purge(days, actor=actor or getpass.getuser())
    console.print(escape("已清理：" + "，".join(f"{name} {count} 条" for name, count in counts.items())))
