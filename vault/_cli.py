"""`harvest vault …`: the IT staff's commands for the unit's accounts.

Passwords, TOTP seeds and passphrases are read by a hidden prompt, or one line each from
stdin when stdin is not a terminal (``printf '%s\\n' "$PW" | harvest vault add …``); never
from an option, because a command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from machine import human_time, local_time, zone_label
from vault._crypto import Header, read_header
from vault._errors import AccountExists, UnknownAccount, VaultError, VaultUsageError
from vault._keys import describe_source
from vault._vault import VAULT_FILE, Vault

app = typer.Typer(
    help="本单位的账号，加密保存：添加、修改、列出、删除、更换密钥。",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)

USAGE_ERRORS = (UnknownAccount, AccountExists, VaultUsageError)

System = Annotated[str, typer.Argument(help="系统代号，例如 population。")]
Account = Annotated[str, typer.Argument(help="系统内的账号名，例如 donghu。")]


@contextlib.contextmanager
def _handled() -> Iterator[None]:
    """A vault error becomes one red line on stderr: exit 2 for a usage error, 1 otherwise."""
    try:
        yield
    except VaultError as exc:
        stderr.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1) from exc


def _read_secret(label: str, *, confirm: bool, empty_ok: bool = False) -> str:
    stdin = sys.stdin
    if stdin.isatty():
        text: str = typer.prompt(
            label, hide_input=True, confirmation_prompt=confirm, default="" if empty_ok else None
        )
        return text
    line = stdin.readline()
    if not line:
        raise VaultUsageError(f"stdin 里没有{label}：用管道传入一行，或在终端里运行")
    return line.rstrip("\r\n")


def _open() -> Vault:
    from settings import load_settings

    return Vault.open(load_settings(), interactive=True)


def _when(moment: dt.datetime | None, timezone: str) -> str:
    """A table cell in the unit's zone; the column's title names the zone."""
    return "" if moment is None else f"{local_time(moment, timezone):%Y-%m-%d %H:%M}"


@app.command()
def init(
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help="用口令（每次启动时询问）而不是密钥文件锁住保险库。",
        ),
    ] = False,
) -> None:
    """建立保险库和它的密钥（密钥文件，权限 0600；设了 HARVEST_VAULT_KEY 时用它）。"""
    from settings import load_settings

    with _handled():
        secret = _read_secret("口令", confirm=True) if passphrase else None
        vault = Vault.init(load_settings(), passphrase=secret)
    console.print(f"已建立 {vault.path}（密钥来自 {vault.key_source}）。", markup=False)
    if not vault.uses_passphrase:
        console.print("请把密钥和保险库分开备份：没有密钥，保险库就打不开。")


@app.command()
def add(
    system: System,
    account: Account,
    username: Annotated[str, typer.Option(help="系统上的登录名。")],
    scope: Annotated[str, typer.Option(help="这个账号能看到其记录的社区。")],
    notes: Annotated[str, typer.Option(help="给工作人员看的备注，例如账号归谁。")] = "",
    totp: Annotated[bool, typer.Option("--totp", help="这个账号有 TOTP 种子：也询问它。")] = False,
) -> None:
    """添加一个账号。密码（以及 TOTP 种子）隐藏输入，或从 stdin 读取。"""
    with _handled():
        vault = _open()
        password = _read_secret("密码", confirm=True)
        seed = _read_secret("TOTP 种子", confirm=False) if totp else None
        info = vault.add(
            system, account, username=username, password=password, scope=scope, totp_seed=seed, notes=notes
        )
    console.print(
        f"已添加 {info.system}/{info.account}（{info.username}，社区 {info.scope}）。", markup=False
    )


@app.command("set")
def set_(
    system: System,
    account: Account,
    password: Annotated[bool, typer.Option("--password", help="询问新密码；停用的账号随之恢复。")] = False,
    totp: Annotated[bool, typer.Option("--totp", help="询问新的 TOTP 种子（留空则去掉 TOTP）。")] = False,
    username: Annotated[str | None, typer.Option(help="新登录名；停用的账号随之恢复。")] = None,
    scope: Annotated[str | None, typer.Option(help="新社区。")] = None,
    notes: Annotated[str | None, typer.Option(help="新备注。")] = None,
) -> None:
    """修改一个账号。新的凭据会恢复停用的账号，并丢弃它保存的会话。"""
    with _handled():
        vault = _open()
        vault.get(system, account)  # an unknown account fails before anyone types a password
        new_password = _read_secret("新密码", confirm=True) if password else None
        seed = _read_secret("新 TOTP 种子", confirm=False, empty_ok=True) if totp else None
        info = vault.set(
            system,
            account,
            password=new_password,
            username=username,
            scope=scope,
            totp_seed=seed,
            notes=notes,
        )
    console.print(f"已修改 {info.system}/{info.account}：状态 {info.status}。", markup=False)


@app.command("list")
def list_(
    system: Annotated[str | None, typer.Argument(help="只列这个系统的账号。")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="输出 JSON 而不是表格。")] = False,
) -> None:
    """账号：状态、停用原因、最近使用时间、登录方式。从不显示任何机密。

    登录方式“HTTP”：这个账号曾由浏览器登录成功，且登录表单原样提交用户名和密码，之后的登录不再启动浏览器；
    登录页一有变化就改回浏览器。
    """
    from settings import load_settings

    timezone = load_settings().timezone
    with _handled():
        accounts = _open().accounts(system)
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in accounts], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"保险库账号（{len(accounts)} 个）")
    last_used = f"最近使用（{zone_label(timezone)}）"
    for column in ("系统", "账号", "用户名", "社区", "状态", "停用原因", last_used, "登录", "TOTP", "备注"):
        table.add_column(column)
    for info in accounts:
        reason = (
            ""
            if info.parked_kind is None
            else f"{info.parked_kind}: {info.parked_message}（{human_time(info.parked_at, timezone)}）"
        )
        status = Text("已停用", style="red") if info.status == "parked" else Text("ok")
        # Escaped: a parking message or a note may hold brackets that are not markup.
        cells = (info.system, info.account, info.username, info.scope)
        login = "HTTP（不启动浏览器）" if info.logs_in_by == "http" else "浏览器"
        rest = (reason, _when(info.last_used, timezone), login, "有" if info.has_totp else "", info.notes)
        table.add_row(*map(escape, cells), status, *map(escape, rest))
    console.print(table)


@app.command()
def remove(system: System, account: Account) -> None:
    """删除一个账号和它保存的会话。"""
    with _handled():
        _open().remove(system, account)
    console.print(f"已删除 {system}/{account}。", markup=False)


@app.command()
def status() -> None:
    """保险库和它的密钥在哪里，有多少账号，几个已停用。"""
    from settings import load_settings

    settings = load_settings()
    path = settings.data_dir / VAULT_FILE
    header: Header | None = None
    with contextlib.suppress(OSError, VaultError):
        header = read_header(path.read_bytes(), path)[0]
    console.print(
        f"保险库文件：{path}{'' if path.exists() else '（还没有：harvest vault init）'}", markup=False
    )
    console.print(f"密钥来自：  {describe_source(settings, header)}", markup=False)
    with _handled():
        accounts = _open().accounts()
    parked = sum(info.status == "parked" for info in accounts)
    console.print(f"账号：      {len(accounts)} 个，已停用 {parked} 个")


@app.command("rotate-key")
def rotate_key() -> None:
    """用新密钥（或新口令）重新加密保险库；中途崩溃也不丢任何东西。"""
    with _handled():
        vault = _open()
        passphrase = _read_secret("新口令", confirm=True) if vault.uses_passphrase else None
        vault.rotate_key(passphrase=passphrase)
    console.print(f"{vault.path} 已改用新密钥（{vault.key_source}）。", markup=False)
    if not vault.uses_passphrase:
        console.print("请更换密钥的备份：旧密钥已打不开保险库。")


if __name__ == "__main__":
    app()
