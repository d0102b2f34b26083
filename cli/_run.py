"""Commands that run robots: `harvest run`, `check`, `record`, `demo`.

Each imports the runtime, the store and the vault when it runs: `harvest run --help` waits for none.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cli._common import (
    EXIT_HELP,
    _fail,
    _red,
    _robots,
    _row,
    _store,
    _vault,
    console,
    stderr,
)

if TYPE_CHECKING:
    import asyncio

    from playwright.async_api import Playwright

    from connectors import Chromium
    from robots.runtime import Harvester, RobotSpec, RunReport
    from sandbox import Sandbox
    from settings import Settings
    from vault import Vault

SAMPLE = 10  # records a check shows unless told

commands = typer.Typer()


@commands.command(epilog=EXIT_HELP)
def run(
    robot: Annotated[str, typer.Argument(help="机器人名，即 `harvest list` 显示的名字。")],
    account: Annotated[str | None, typer.Option(help="用机器人所属系统的这个账号采集。")] = None,
    all_: Annotated[bool, typer.Option("--all", help="用机器人所属系统的每个账号采集。")] = False,
) -> None:
    """立即运行一个机器人：登录（或沿用保存的会话）、采集，全部顺利才发布。"""
    if (account is None) == (not all_):
        raise typer.BadParameter("写 --account ACCOUNT 或 --all", param_hint="--account / --all")

    def plan(settings: Settings) -> list[tuple[RobotSpec, str]]:
        spec = _robot_named(robot)
        return [(spec, name) for name in _accounts(settings, spec, account)]

    reports = _harvest(_settings, plan)
    raise typer.Exit(_print_reports(reports))


def _settings() -> Settings:
    from settings import load_settings

    return load_settings()


def _robot_named(robot: str) -> RobotSpec:
    """The robot called ``robot``, or a usage error naming the robots there are."""
    from robots.runtime import broken

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


def _harvest(
    load: Callable[[], Settings],
    plan: Callable[[Settings], list[tuple[RobotSpec, str]]],
    *,
    parallel: int = 1,
) -> list[RunReport]:
    """Run every (robot, account) ``plan`` gives under the settings ``load`` gives, with a progress
    display; accounts in parallel."""
    import asyncio

    from connectors._browser import Chromium, ChromiumMissing, start_playwright
    from machine import run_blocking

    def opened(settings: Settings) -> tuple[list[tuple[RobotSpec, str]], Vault]:
        from robots.runtime import configure_logging

        configure_logging(settings, level="WARNING")
        return plan(settings), _vault(settings)

    async def warmed(driver: asyncio.Task[Playwright], settings: Settings) -> Chromium:
        chromium = Chromium(await driver, settings)
        chromium.warm()  # a run usually logs in: Chromium starts now, not at the login
        return chromium

    async def go() -> list[RunReport]:
        # Playwright's driver starts while the settings, the runtime, the robots and the vault load
        # in a thread; then Chromium, if a run will log in with it, while the store opens.
        driver = asyncio.create_task(start_playwright())
        browser: asyncio.Task[Chromium] | None = None
        try:
            settings = await asyncio.to_thread(load)
            planned, vault = await asyncio.to_thread(opened, settings)
            if _logs_in_by_browser(vault, planned):  # one read of the vault, however many runs
                browser = asyncio.create_task(warmed(driver, settings))
            store = await asyncio.to_thread(_store, settings)
            chromium = await browser if browser is not None else Chromium(await driver, settings)
        except BaseException:
            await _stopped(driver, browser)
            raise
        from robots.runtime import Harvester, RichProgress

        with RichProgress(console) as progress:
            async with Harvester(
                settings, store, vault, hooks=[progress], interactive=sys.stdin.isatty(), chromium=chromium
            ) as h:
                gate = asyncio.Semaphore(parallel)

                async def one(robot: RobotSpec, account: str) -> RunReport:
                    async with gate:
                        return await h.run(robot, account)

                return list(await asyncio.gather(*(one(robot, account) for robot, account in planned)))

    try:
        return run_blocking(go)
    except ChromiumMissing as exc:
        raise _fail(str(exc), 1) from exc


def _logs_in_by_browser(vault: Vault, planned: list[tuple[RobotSpec, str]]) -> bool:
    """Will a planned run log in with Chromium? Not one whose account a browser login showed how to
    post the form (nor one the vault lacks: that run says so, with no browser)."""
    from connectors._recipe import replayable

    accounts = {(info.system, info.account): info for info in vault.accounts()}
    for robot, account in planned:
        info = accounts.get((robot.system.name, account))
        if info is not None and (info.logs_in_by != "http" or not replayable(robot.system)):
            return True
    return False


async def _stopped(driver: asyncio.Task[Playwright], browser: asyncio.Task[Chromium] | None) -> None:
    """Undo an early start: the browser closed, the driver stopped, whatever of them got going."""
    import contextlib

    if browser is not None:
        with contextlib.suppress(Exception):
            await (await browser).close()
    with contextlib.suppress(Exception):
        await (await driver).stop()


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
    from connectors import ChromiumMissing
    from machine import run_blocking
    from robots.runtime import Harvester, configure_logging

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


@commands.command(epilog=EXIT_HELP)
def check(
    robot: Annotated[str, typer.Argument(help="机器人名，即 `harvest list` 显示的名字。")],
    account: Annotated[str, typer.Option(help="用机器人所属系统的这个账号登录。")],
    pages: Annotated[int, typer.Option(min=0, help="读前几页；0 表示读完整个列表。")] = 2,
    sample: Annotated[int, typer.Option(min=0, help="显示多少条记录（已脱敏）。")] = SAMPLE,
) -> None:
    """运行前的检查：登录、读前几页、校验记录，脱敏显示样例，并与系统显示的总数核对；不发布任何数据。

    登录、停用账号和允许采集的时段与 `harvest run` 相同（账号锁定规则照样适用）；退出码也相同。
    """
    from robots.runtime import findings, sample_table, verdict
    from settings import load_settings

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


@commands.command(epilog=EXIT_HELP)
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
    from robots.runtime import expected_beside, recorded, write_expected
    from settings import load_settings

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


@commands.command(epilog=EXIT_HELP)
def demo(
    persons: Annotated[
        int | None, typer.Option(help="沙箱中的人数（默认：HARVEST_SANDBOX_PERSONS）。")
    ] = None,
) -> None:
    """启动沙箱，把它的演示账号放进保险库，用每个演示账号运行每个演示机器人。"""
    from sandbox import Sandbox, SandboxError, generate_world
    from settings import load_settings

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
        reports = _harvest(lambda: settings, lambda _: plan, parallel=3)
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
    from vault import NoVault, Vault, VaultError

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
