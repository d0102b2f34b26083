"""`harvest serve`: the desk, the staff's query site (its staff accounts are `harvest desk`, desk._cli)."""

from __future__ import annotations

import signal
import socket
from typing import Annotated

import typer

from cli._common import _fail, console, stderr

commands = typer.Typer()


@commands.command()
def serve(
    host: Annotated[str | None, typer.Option(help="监听地址（默认：HARVEST_DESK_HOST，127.0.0.1）。")] = None,
    port: Annotated[int | None, typer.Option(help="端口（默认：HARVEST_DESK_PORT，8700）。")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="进程数（默认：HARVEST_DESK_WORKERS，1）；大约每个 CPU 核一个。", min=1, max=64),
    ] = None,
) -> None:
    """运行查询台：工作人员查询快照的中文网页，个人信息脱敏，查询记入审计。

    查询台账号用 `harvest desk add-user` 建立。要在本机以外使用，请放在同一台主机的 HTTPS 反向代理之后
    （哪些代理的 X-Forwarded-For 可信由 HARVEST_DESK_TRUSTED_PROXIES 决定）；经 HTTPS 访问时会话
    cookie 带 Secure。按 Ctrl-C 停止。
    """
    import uvicorn

    from desk import create_app as create_desk
    from robots.runtime import configure_logging
    from settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    host, port = host or settings.desk_host, settings.desk_port if port is None else port
    try:
        desk = create_desk(settings)
    except ValueError as exc:  # a damaged desk.key or an impossible HARVEST_DESK_* value
        raise _fail(f"查询台无法启动：{exc}") from exc
    if not desk.state.desk.staff.users():
        stderr.print("还没有查询台账号：先建一个  harvest desk add-user NAME --role admin", markup=False)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise _fail(
            f"无法在 {host}:{port} 监听（{exc.strerror}）：用 --port 或 HARVEST_DESK_PORT 换一个端口"
        ) from exc
    console.print(f"查询台（社区数据查询）：http://{host}:{port}/", markup=False)
    # uvicorn stops gracefully on these, then raises the signal again to the handler it found:
    # a quiet one, so a stop asked for ends with exit code 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    workers = workers or settings.desk_workers
    uvicorn.run(
        # More than one process: each builds its own app (desk.serve_app) from the same settings.
        desk if workers == 1 else "desk:serve_app",
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        access_log=False,  # its lines carry query strings: what staff searched for
        log_level="warning",
        # X-Forwarded-For and -Proto only from the proxies named: believed from anyone else, it lets a
        # client pick the address that the audit records and that login throttling counts.
        proxy_headers=bool(settings.desk_trusted_proxies),
        forwarded_allow_ips=settings.desk_trusted_proxies,
    )
