"""Serve every sandbox system on its own 127.0.0.1 port, from a background thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import uvicorn

from sandbox._accounts import DemoAccount
from sandbox._assist import SPEC as ASSIST
from sandbox._civil import SPEC as CIVIL
from sandbox._disability import SPEC as DISABILITY
from sandbox._health import SPEC as HEALTH
from sandbox._market import SPEC as MARKET
from sandbox._population import SPEC as POPULATION
from sandbox._switches import Switches
from sandbox._system import SandboxSystem, SystemSpec
from sandbox._world import World

SPECS: tuple[SystemSpec, ...] = (POPULATION, CIVIL, MARKET, HEALTH, ASSIST, DISABILITY)


class _QuietDrops(logging.Filter):
    """Injected dropped connections are intended; keep their tracebacks out of the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "DroppedConnection"


class SandboxError(RuntimeError):
    """The sandbox could not start (a port in use, most often)."""


class Sandbox:
    """All simulated systems over one world; use as a context manager or ``start()``/``stop()``.

    ``port=0`` picks free ports (tests); otherwise systems take ``port``, ``port+1``, …
    """

    def __init__(
        self,
        world: World,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        switches: Mapping[str, Switches] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.systems: dict[str, SandboxSystem] = {
            spec.code: SandboxSystem(spec, world, (switches or {}).get(spec.code)) for spec in SPECS
        }
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    def __getitem__(self, code: str) -> SandboxSystem:
        return self.systems[code]

    @property
    def accounts(self) -> list[DemoAccount]:
        return [account for system in self.systems.values() for account in system.accounts]

    def start(self, timeout: float = 20.0) -> Self:
        sockets = [self._bind(i) for i in range(len(self.systems))]
        logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
        for system, sock in zip(self.systems.values(), sockets, strict=True):
            system.url = f"http://{self.host}:{sock.getsockname()[1]}"
            config = uvicorn.Config(
                system.app,
                log_level="warning",
                access_log=False,
                http="h11",
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            self._servers.append(uvicorn.Server(config))
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(sockets)), name="sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(server.started for server in self._servers):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SandboxError("the sandbox systems did not start; see the log above")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._servers.clear()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _serve(self, sockets: list[socket.socket]) -> None:
        await asyncio.gather(
            *(server.serve(sockets=[sock]) for server, sock in zip(self._servers, sockets, strict=True))
        )

    def _bind(self, index: int) -> socket.socket:
        # IPPROTO_TCP explicitly: asyncio turns Nagle off only for sockets that say so, and
        # without it every response with a body waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = self.port + index if self.port else 0
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            raise SandboxError(
                f"cannot listen on {self.host}:{port} ({exc.strerror}); stop whatever uses it "
                "or choose other ports with HARVEST_SANDBOX_PORT"
            ) from exc
        return sock
