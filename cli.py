"""The ``harvest`` command: a thin layer over the packages of this repository."""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import pandas as pd
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select

from connectors import ChromiumMissing
from desk import create_app as create_desk
from desk._cli import app as desk_cli
from robots import Harvester, RobotDeclarationError, RobotSpec, RunReport, discover, run_blocking
from robots._logs import configure_logging
from robots._progress import RichProgress
from sandbox import SPECS, Sandbox, SandboxError, Switches, generate_world
from scheduler import HarvestScheduler, JobState, SchedulerBusy, describe
from settings import Settings, load_settings
from store import Access, RevealRefused, Run, Snapshot, Store, StoreUnavailable, UnknownDataset, make_engine
from vault import NoVault, Vault, VaultError
from vault._cli import app as vault_cli

app = typer.Typer(
    help="gridharvest: robots that harvest a community's own records into a local snapshot.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help text: option help says "[default: …]", which rich markup would swallow as a tag.
    rich_markup_mode=None,
)
app.add_typer(vault_cli, name="vault")
app.add_typer(desk_cli, name="desk")
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


# ---- robots: list, run, demo ---------------------------------------------------------------------

EXIT_HELP = (
    "Exit codes: 0 ok; 1 a robot failed unexpectedly; 2 usage; 3 bad_credentials or locked (the account "
    "is parked); 4 needs_human; 5 layout_changed; 6 system_unavailable. With several runs, the code of "
    "the first that failed."
)


def _store(settings: Settings) -> Store:
    try:
        return Store(make_engine(settings.resolved_database_url))
    except StoreUnavailable as exc:
        stderr.print(f"[red]database unavailable:[/red] {exc}")
        raise typer.Exit(1) from exc


def _vault(settings: Settings) -> Vault:
    try:
        return Vault.open(settings, interactive=sys.stdin.isatty())
    except VaultError as exc:
        stderr.print(f"[red]vault:[/red] {exc}")
        raise typer.Exit(1) from exc


def _robots() -> dict[str, RobotSpec]:
    try:
        return discover()
    except RobotDeclarationError as exc:
        stderr.print(f"[red]robots:[/red] {exc}")
        raise typer.Exit(1) from exc


def _harvest(settings: Settings, plan: list[tuple[RobotSpec, str]], *, parallel: int = 1) -> list[RunReport]:
    """Run every (robot, account) of ``plan`` with a progress display; accounts in parallel."""
    configure_logging(settings, level="WARNING")
    store, vault = _store(settings), _vault(settings)

    async def go(progress: RichProgress) -> list[RunReport]:
        async with Harvester(settings, store, vault, progress=progress, interactive=sys.stdin.isatty()) as h:
            gate = asyncio.Semaphore(parallel)

            async def one(robot: RobotSpec, account: str) -> RunReport:
                async with gate:
                    return await h.run(robot, account)

            return list(await asyncio.gather(*(one(robot, account) for robot, account in plan)))

    with RichProgress(console) as progress:
        try:
            return run_blocking(lambda: go(progress))
        except ChromiumMissing as exc:
            stderr.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc


def _print_reports(reports: list[RunReport]) -> int:
    table = Table(title="采集结果")
    for column in ("数据集", "系统/账号", "状态", "记录", "新增", "变更", "注销", "秒"):
        table.add_column(
            column, justify="right" if column in ("记录", "新增", "变更", "注销", "秒") else "left"
        )
    for r in reports:
        status = "[green]ok[/green]" if r.status == "ok" else f"[red]{r.kind or r.status}[/red]"
        table.add_row(
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
            stderr.print(f"[red]{r.robot} · {r.system}/{r.account}: {r.kind}[/red] {r.message}")
            if r.artifacts:
                stderr.print(f"  evidence: {r.artifacts}")
    return next((r.exit_code for r in reports if r.exit_code), 0)


@app.command("list")
def list_() -> None:
    """Systems, robots and accounts, with each account's last run and its status."""
    settings = load_settings()
    robots_ = _robots()
    systems = {robot.system.name: robot.system for robot in robots_.values()}
    table = Table(title="Systems")
    for column in ("system", "title", "base URL", "politeness"):
        table.add_column(column)
    for system in systems.values():
        p = system.politeness
        url = settings.system_urls.get(system.name, system.base_url)
        table.add_row(system.name, system.title, url, f"{p.concurrency} at once, {p.rate:g}/s")
    console.print(table)
    table = Table(title="Robots")
    for column in ("robot", "system", "dataset", "schedule", "what it harvests"):
        table.add_column(column)
    for robot in robots_.values():
        table.add_row(robot.name, robot.system.name, robot.dataset, robot.schedule, robot.doc)
    console.print(table)
    vault = _vault(settings)
    last = _last_runs(settings)
    table = Table(title="Accounts")
    for column in ("system", "account", "scope", "status", "last run", "result"):
        table.add_column(column)
    for account in vault.accounts():
        run = last.get((account.system, account.account))
        status = "ok" if account.status == "ok" else f"[red]parked ({account.parked_kind})[/red]"
        when = f"{run.started_at.astimezone(SHANGHAI):%m-%d %H:%M}" if run else "never"
        result = (run.status if run.status == "ok" else f"{run.status}: {run.failure_kind}") if run else ""
        table.add_row(account.system, account.account, account.scope, status, when, result)
    console.print(table)


def _last_runs(settings: Settings) -> dict[tuple[str, str], Run]:
    with Session(_store(settings).engine) as session:
        runs_ = session.exec(select(Run).order_by(Run.started_at))  # type: ignore[arg-type]
        return {(run.system, run.account): run for run in runs_}


@app.command(epilog=EXIT_HELP)
def run(
    robot: Annotated[str, typer.Argument(help="Robot name, as `harvest list` shows it.")],
    account: Annotated[str | None, typer.Option(help="Run with this account of the robot's system.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Run with every account of the robot's system.")
    ] = False,
) -> None:
    """Run one robot now: log in (or reuse the saved session), harvest, publish if all went well."""
    settings = load_settings()
    robots_ = _robots()
    spec = robots_.get(robot)
    if spec is None:
        raise typer.BadParameter(
            f"no robot {robot!r}; robots: {', '.join(robots_) or 'none'}", param_hint="ROBOT"
        )
    if (account is None) == (not all_):
        raise typer.BadParameter("say --account ACCOUNT or --all", param_hint="--account / --all")
    known = [a.account for a in _vault(settings).accounts(spec.system.name)]
    accounts = known if all_ else [account]
    if not accounts or (account is not None and account not in known):
        raise typer.BadParameter(
            f"no account {account or ''} of {spec.system.name} in the vault "
            f"(known: {', '.join(known) or 'none'}); add one with "
            f"`harvest vault add {spec.system.name} ACCOUNT --username U --scope S`",
            param_hint="--account",
        )
    reports = _harvest(settings, [(spec, name) for name in accounts if name is not None])
    raise typer.Exit(_print_reports(reports))


@app.command(epilog=EXIT_HELP)
def demo(
    persons: Annotated[int | None, typer.Option(help="Persons in the sandbox [default: settings].")] = None,
) -> None:
    """Start the sandbox, register its demo accounts, run every demo robot for every account."""
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
        "Next: `harvest list` · `harvest runs` · `harvest freshness` · `harvest query persons --search 王` · "
        "`harvest person <身份证号>` · `harvest sandbox` to browse the systems yourself · "
        "the staff desk: `harvest desk add-user admin --role admin`, then `harvest serve`"
    )
    raise typer.Exit(code)


def _register_demo_accounts(settings: Settings, box: Sandbox) -> None:
    """Put the sandbox's demo accounts in the vault (creating the vault and its key if needed)."""
    try:
        vault = Vault.open(settings)
    except NoVault:
        vault = Vault.init(settings)
        console.print(f"Created a vault for the demo accounts, its key in {settings.resolved_vault_key_file}")
    except VaultError as exc:
        stderr.print(f"[red]vault:[/red] {exc}")
        raise typer.Exit(1) from exc
    known = {(a.system, a.account): a for a in vault.accounts()}
    for account in box.accounts:
        info = known.get((account.system, account.account))
        if info is None:
            vault.add(
                account.system,
                account.account,
                username=account.username,
                password=account.password,
                scope=account.scope,
            )
        elif info.status == "parked":
            vault.set(account.system, account.account, password=account.password)


# ---- the scheduler ---------------------------------------------------------------------------------


@app.command()
def schedule(
    list_: Annotated[
        bool, typer.Option("--list", help="List every job, its next run and last result.")
    ] = False,
) -> None:
    """Run the scheduler in the foreground: every robot × account on its cron, until SIGTERM/Ctrl+C.

    On SIGTERM it takes no new jobs, lets a running robot finish for HARVEST_STOP_TIMEOUT_S,
    then cancels it (nothing is published). Only one scheduler may run per data dir.
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
        stderr.print(f"[red]scheduler:[/red] {exc}")
        raise typer.Exit(1) from exc
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    console.print(f"Scheduler running with {len(daemon.jobs)} jobs; SIGTERM or Ctrl+C stops it.")
    stop.wait()
    daemon.stop()


def _print_jobs(settings: Settings) -> None:
    states = _job_states(_store(settings).engine)
    table = Table(title="Scheduled jobs")
    for column in ("job", "cron", "next run", "last result"):
        table.add_column(column)
    for job in describe(settings, _vault(settings)):
        state = states.get(job["job"])
        last = (state.last_status or "") if state else "never run"
        if state and state.kind:
            last += f" [red](waiting: {state.kind})[/red]"
        table.add_row(job["job"], job["cron"], f"{job['next_run']:%Y-%m-%d %H:%M}", last)
    console.print(table)


def _job_states(engine: Engine) -> dict[str, JobState]:
    SQLModel.metadata.create_all(engine, tables=[JobState.__table__])  # type: ignore[list-item]
    with Session(engine) as session:
        return {state.key: state for state in session.exec(select(JobState))}


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable, for monitoring.")] = False,
) -> None:
    """One line per dataset: system, accounts, last good run, age, next run, health."""
    settings = load_settings()
    jobs = describe(settings, _vault(settings))
    engine = _store(settings).engine
    states = _job_states(engine)
    fresh = {item.dataset: item for item in Snapshot(engine).freshness()}
    rows = []
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
                "last_good": item.last_good.isoformat() if item and item.last_good else None,
                "age_hours": round(item.age_hours, 1) if item and item.age_hours is not None else None,
                "next_run": min(job["next_run"] for job in mine).isoformat(),
                "health": ", ".join(problems) or ("stale" if stale else "ok"),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="Status")
    for column in ("dataset", "system", "accounts", "last good run", "age (h)", "next run", "health"):
        table.add_column(column)
    for row in rows:
        health = row["health"] if row["health"] == "ok" else f"[red]{row['health']}[/red]"
        table.add_row(
            row["dataset"],
            row["system"],
            str(row["accounts"]),
            row["last_good"] or "never",
            "-" if row["age_hours"] is None else str(row["age_hours"]),
            row["next_run"][:16],
            health,
        )
    console.print(table)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: HARVEST_DESK_HOST, 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: HARVEST_DESK_PORT, 8700].")] = None,
) -> None:
    """Serve the desk: the Chinese web pages where staff search the snapshot, masked and audited.

    Staff accounts come from `harvest desk add-user`. Beyond this machine, serve it behind an HTTPS
    reverse proxy on the same host (its X-Forwarded-* headers are trusted from 127.0.0.1 only);
    over HTTPS the session cookie is Secure. Stop with Ctrl-C.
    """
    settings = load_settings()
    configure_logging(settings)
    host, port = host or settings.desk_host, settings.desk_port if port is None else port
    try:
        desk = create_desk(settings)
    except StoreUnavailable as exc:
        stderr.print(f"[red]database unavailable:[/red] {exc}")
        raise typer.Exit(1) from exc
    except ValueError as exc:  # a damaged desk.key or an impossible HARVEST_DESK_* value
        stderr.print(f"[red]the desk cannot start:[/red] {exc}", markup=True)
        raise typer.Exit(2) from exc
    if not desk.state.desk.staff.users():
        stderr.print("No staff accounts yet: create one with  harvest desk add-user NAME --role admin")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        stderr.print(
            f"[red]cannot listen on {host}:{port}:[/red] {exc.strerror}; choose --port or HARVEST_DESK_PORT"
        )
        raise typer.Exit(2) from exc
    console.print(f"Desk (社区数据查询) at http://{host}:{port}/", markup=False)
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
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    app()
