"""What several commands share: the consoles, one-line failures, table cells, signals, and opening the
store, the vault and the robots.

Only typer, rich and the standard library at import: every command imports what it needs itself, so
`harvest --help` and a command that needs no database, browser or data frame start in a blink.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from machine import local_time, zone_label

if TYPE_CHECKING:
    import datetime as dt

    from robots.runtime import RobotSpec
    from settings import Settings
    from store import Store
    from vault import Vault

SIGNAL_POLL_S = 0.5  # how often a foreground command that waits for Ctrl+C looks for it

EXIT_HELP = (
    "退出码：0 成功；1 机器人意外失败；2 用法或配置有误；3 bad_credentials 或 locked（账号已停用）；"
    "4 needs_human；5 layout_changed；6 system_unavailable；7 disk_full（本机磁盘已满）；"
    "8 account_busy（账号正被另一次采集使用）。多次采集时，取第一次失败的退出码。"
)

console = Console()
stderr = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as one red line on stderr, never read as markup; the exit to raise."""
    stderr.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


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


def _store(settings: Settings) -> Store:
    """The store; a database that cannot be opened or written reaches the boundary as one line."""
    from store import Store, make_engine

    try:
        return Store(make_engine(settings.resolved_database_url))
    except OSError as exc:  # its folder cannot be made, or the path is not a file
        raise _fail(
            f"数据库路径 {exc.filename} 无法使用（{exc.strerror}）："
            "检查 HARVEST_DATA_DIR 或 HARVEST_DATABASE_URL"
        ) from exc


def _vault(settings: Settings) -> Vault:
    from vault import Vault, VaultError

    try:
        return Vault.open(settings, interactive=sys.stdin.isatty())
    except VaultError as exc:
        raise _fail(f"保险库：{exc}", 1) from exc


def _robots() -> dict[str, RobotSpec]:
    """The robots that load; each robot file that does not is one line on stderr, and the rest run."""
    from robots.runtime import broken, discover

    robots_ = discover()
    for why in broken().values():
        stderr.print(
            f"机器人文件无法加载，它的机器人不会运行：{why}", style="red", markup=False, highlight=False
        )
    return robots_


def _print_broken() -> None:
    """Robot files that do not import, by name, each with where and why (the other robots still run)."""
    from robots.runtime import broken

    if not broken():
        return
    table = Table(title="无法加载的机器人文件（修正后它们的机器人才会运行；其余照常）")
    for column in ("模块", "原因"):
        table.add_column(column)
    for module, why in broken().items():
        _row(table, module, _red(why))
    console.print(table)
