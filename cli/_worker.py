"""`harvest worker`: one worker of the pool, running what the scheduler hands out over Redis."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import _fail, _robots, _stop_on_signals, _until_signalled, console

commands = typer.Typer()


@commands.command()
def worker(
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="同时运行的机器人数（默认 HARVEST_WORKER_THREADS）。"),
    ] = None,
) -> None:
    """工作池的一个工作进程：运行调度器经 Redis 交出的任务，直到 SIGTERM 或 Ctrl+C。

    收到 SIGTERM 后不再领取新任务，正在运行的机器人有 HARVEST_STOP_TIMEOUT_S 秒收尾，之后取消
    （不发布任何数据）并放回队列，由另一个工作进程运行。
    """
    from robots.runtime import configure_logging
    from settings import load_settings
    from vault import VaultError

    try:
        from scheduler._dramatiq import PoolUnavailable, PoolWorker
    except ImportError as exc:
        raise _fail(
            f"工作进程需要 distributed 扩展（缺少 {exc.name}）：在项目的 venv 里运行 "
            "pip install 'gridharvest[distributed]'"
        ) from exc
    settings = load_settings()
    configure_logging(settings)
    try:
        pool = PoolWorker(settings, threads or settings.worker_threads)
    except (PoolUnavailable, VaultError) as exc:
        raise _fail(f"工作进程：{exc}", 1) from exc
    stop = _stop_on_signals()
    _robots()  # the worker planned the robots that load: say which files it left out
    pool.start()
    console.print(f"工作进程已启动，共 {len(pool.runs.jobs)} 个任务；SIGTERM 或 Ctrl+C 停止。")
    _until_signalled(stop)
    pool.stop()
