"""`harvest sandbox`: the simulated government systems, in the foreground."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli._common import _fail, _row, _stop_on_signals, _until_signalled, console, stderr

if TYPE_CHECKING:
    from sandbox import Sandbox, Switches

commands = typer.Typer()


def _switches(assignments: list[str], systems: list[str]) -> dict[str, Switches]:
    """Parse ``SYSTEM.SWITCH=VALUE`` options; a bad one is a usage error that names the fix."""
    from sandbox import Switches

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


@commands.command()
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
    from sandbox import SPECS, Sandbox, SandboxError, generate_world
    from settings import load_settings

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


def _print_sandbox(box: Sandbox, persons: int) -> None:
    from sandbox import Switches

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
