"""The ``harvest`` command: a thin layer over the packages of this repository."""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sandbox import SPECS, Sandbox, SandboxError, Switches, generate_world
from settings import load_settings

app = typer.Typer(
    help="gridharvest: robots that harvest a community's own records into a local snapshot.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)


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


if __name__ == "__main__":
    app()
