"""The ``harvest`` command: a thin layer over the packages of this repository.

One module per group of commands; each imports the runtime, the store, the desk or the sandbox inside
the command that needs them, so `harvest --help` and every command's help start without them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

import typer
from typer.core import TyperGroup

from cli import _desk, _robots, _run, _sandbox, _schedule, _snapshot, _worker
from cli._common import _fail
from desk._cli import app as desk_cli
from vault._cli import app as vault_cli

if TYPE_CHECKING:
    from sqlalchemy.exc import OperationalError

__all__ = ["app"]


def _raised(exc: BaseException, module: str, name: str) -> bool:
    """Whether ``exc`` is ``module.name``, asked without importing ``module``: no instance of a class
    exists before its module is loaded, and loading SQLAlchemy to learn that would cost every command."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


class _Harvest(TyperGroup):
    """The one boundary where a configuration that cannot work becomes one line naming the fix.

    A malformed setting and a database that cannot be opened or written are the unit's to mend,
    not a bug of ours: one red line and exit 2, from every command, never a traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if _raised(exc, "settings", "ConfigurationError") or _raised(exc, "store", "StoreUnavailable"):
                raise _fail(str(exc)) from exc
            if _raised(exc, "sqlalchemy.exc", "OperationalError"):
                raise _fail(_database_problem(cast("OperationalError", exc))) from exc
            raise


def _database_problem(exc: OperationalError) -> str:
    import sqlalchemy as sa  # loaded already: the error came from it

    from settings import load_settings

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


app = typer.Typer(
    cls=_Harvest,
    help="gridharvest：把社区自己的记录采集到本地快照的机器人。",
    no_args_is_help=True,
    add_completion=False,
    # Plain help text: option help says "[default: …]", which rich markup would swallow as a tag.
    rich_markup_mode=None,
)
# Registered in the order `harvest --help` lists them.
for module in (_sandbox, _snapshot, _robots, _run, _schedule, _worker, _desk):
    app.add_typer(module.commands)
app.add_typer(vault_cli, name="vault")
app.add_typer(desk_cli, name="desk")


@app.callback()
def main() -> None:
    """gridharvest：机器人用本单位自己的账号登录政务系统，把这些账号能看到的记录保存为本地快照。

    设置来自 HARVEST_* 环境变量（见 README.md）。
    """


def run() -> None:
    """The ``harvest`` entry point: ``app``, then an exit that skips the interpreter's teardown.

    By the time a command returns, what it wrote is committed and closed. Tearing down the native
    extensions a run loads (ONNX Runtime's thread pools for the captcha, SQLAlchemy, pydantic) then
    takes another quarter second of a few-second run, for nothing: the exit handlers run, the log
    sinks close and the streams flush, and the process ends.
    """
    import atexit
    import os

    from loguru import logger

    code: int | str | None = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # what sys.exit("…") would have printed
        print(code, file=sys.stderr)
    atexit._run_exitfuncs()
    logger.remove()  # closes the file sinks (and their queues)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
