"""The scheduler's commands: `harvest schedule` (the daemon, or `--list` its jobs) and `harvest status`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli._common import (
    _clock,
    _fail,
    _print_broken,
    _red,
    _robots,
    _row,
    _stop_on_signals,
    _store,
    _until_signalled,
    _vault,
    _zoned,
    console,
    stderr,
)
from machine import exposed_paths, local_time

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scheduler import JobState
    from settings import Settings

commands = typer.Typer()


@commands.command()
def schedule(
    list_: Annotated[bool, typer.Option("--list", help="列出每个任务、下次运行时间和上次结果。")] = False,
) -> None:
    """在前台运行调度器：每个机器人 × 账号按各自的 cron 运行，直到 SIGTERM 或 Ctrl+C。

    收到 SIGTERM 后不再接新任务，正在运行的机器人有 HARVEST_STOP_TIMEOUT_S 秒收尾，
    之后取消（不发布任何数据）。每个数据目录只能运行一个调度器。
    """
    from robots.runtime import configure_logging
    from scheduler import HarvestScheduler, SchedulerBusy
    from settings import load_settings
    from vault import VaultError

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
    from scheduler import describe

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
    from sqlmodel import Session, select

    from scheduler import JobState
    from store import create_tables

    create_tables(engine, [JobState.__table__])  # type: ignore[list-item]
    with Session(engine) as session:
        return {state.key: state for state in session.exec(select(JobState))}


@commands.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="机器可读的输出，供监控用。")] = False,
) -> None:
    """每个数据集一行：系统、账号数、最近成功采集、距今、下次运行、健康状况；无法加载的机器人文件也列出。"""
    from robots.runtime import broken
    from scheduler import describe
    from settings import load_settings
    from store import Snapshot

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
