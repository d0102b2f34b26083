"""Helpers the desk tests share: a real snapshot from the sandbox world, staff accounts, a served desk."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from robots.sandbox_civil import ElderlyCare
from robots.sandbox_population import Household, Person
from sandbox import World
from settings import Settings
from store import Store, make_engine

PASSWORD = "Desk-Pass-2026"  # every test user's; a test that looks for leaks searches for it


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


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port from a thread; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off")
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
