"""Shared fixtures: real Chromium from our settings, one sandbox per session, data in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import launch_options
from sandbox import Sandbox, World, generate_world
from settings import Settings, load_settings
from store import Store, make_engine
from tests.services import PostgresServer, RedisServer, postgres_server, redis_server
from vault import Vault

# Small but realistic: three communities, so every scope test has neighbours to refuse.
TEST_SEED = 11
TEST_PERSONS = 900
TEST_COMMUNITIES = 3


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing a test does may touch ./data: point the data dir at the test's own folder."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("HARVEST_DATA_DIR", str(data_dir))
    monkeypatch.delenv("HARVEST_DATABASE_URL", raising=False)
    return data_dir


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium with our flags, never a downloaded build."""
    return {**browser_type_launch_args, **launch_options(load_settings())}


@pytest.fixture(scope="session")
def world() -> World:
    return generate_world(seed=TEST_SEED, persons=TEST_PERSONS, communities=TEST_COMMUNITIES)


@pytest.fixture(scope="session")
def _running_sandbox(world: World) -> Iterator[Sandbox]:
    with Sandbox(world) as box:
        yield box


@pytest.fixture
def sandbox(_running_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox, clean for each test: default switches, no sessions, no lockouts."""
    for system in _running_sandbox.systems.values():
        system.reset()
    yield _running_sandbox
    for system in _running_sandbox.systems.values():
        system.reset()


@pytest.fixture
def settings(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings that point the sandbox systems' declarations at the running sandbox."""
    urls = {code: system.url for code, system in sandbox.systems.items()}
    monkeypatch.setenv("HARVEST_SYSTEM_URLS", json.dumps(urls))
    return load_settings()


@pytest.fixture
def vault(settings: Settings, sandbox: Sandbox) -> Vault:
    """A new vault in the test's data dir holding every sandbox demo account."""
    box = Vault.init(settings)
    for account in sandbox.accounts:
        account.enroll(box)
    return box


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store(make_engine(settings.resolved_database_url))


# ---- databases and Redis --------------------------------------------------------------------
# Tests of the store, search, leases and the scheduler take ``database_url`` and run on both
# databases; PostgreSQL and Redis are private servers started once per session (tests/services.py).

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database: an SQLite file in tmp_path, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'harvest.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture(scope="session")
def _redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(_redis: RedisServer) -> str:
    """The session's private Redis, emptied for each test."""
    _redis.flush()
    return _redis.url
