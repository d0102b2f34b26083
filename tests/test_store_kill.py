"""A run killed with SIGKILL while staging or publishing leaves the snapshot as it was (row by row),
on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from store import Store, make_engine
from tests.services import PostgresServer
from tests.store_helpers import harvest, people

ROWS = 60_000
HELPER = Path(__file__).with_name("store_helpers.py")
Copier = Callable[[Path], str]  # a copy of the first harvest, made in a test's folder: its URL


def _copy_sqlite(source: Path, target: Path) -> str:
    for part in source.parent.glob(source.name + "*"):  # the database and its WAL files
        shutil.copy(part, target.parent / part.name.replace(source.name, target.name))
    return f"sqlite:///{target}"


def _copy_postgres(server: PostgresServer, source: str, made: list[str]) -> str:
    """A new database made from the first harvest's as its template (nobody may be connected to it)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user={server.user} dbname=postgres") as conn:
        conn.autocommit = True
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source.rsplit("/", 1)[1]}"')
    made.append(server.url(name))
    return made[-1]


def _dump(url: str) -> pd.DataFrame:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql("SELECT * FROM snap_residents ORDER BY id_number", conn)
    finally:
        engine.dispose()  # no connection may stay on a template or a database dropped at the end


def _content(frame: pd.DataFrame) -> pd.DataFrame:
    """What the records say, without the run ids that differ between two runs of the same harvest."""
    return frame.assign(gone=frame["gone_run"].notna())[["id_number", "name", "address", "gone"]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def first_harvest(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Copier]:
    """A first harvest of ROWS records, and the maker of its copies."""
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp("base") / "harvest.db"
        url = f"sqlite:///{db}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database()
    store = Store(make_engine(url))
    harvest(store, people(ROWS))
    store.engine.dispose()
    if request.param == "sqlite":
        yield lambda folder: _copy_sqlite(db, folder / "harvest.db")
        return
    made = [url]
    try:
        yield lambda _folder: _copy_postgres(server, url, made)
    finally:
        for each in made:
            server.drop_database(each)


@pytest.fixture(scope="module")
def full_reharvest(first_harvest: Copier, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    url = first_harvest(tmp_path_factory.mktemp("after"))
    subprocess.run([sys.executable, str(HELPER), url, str(ROWS)], check=True, capture_output=True)
    return _content(_dump(url))


@pytest.mark.parametrize(
    ("phase", "delay"),
    [
        ("staging", 0.2),
        ("staging", 0.8),
        ("publishing", 0.05),
        ("publishing", 0.3),
        ("publishing", 0.6),
        ("published", 0.0),
    ],
)
def test_sigkill_leaves_the_old_snapshot_or_the_whole_new_one(
    first_harvest: Copier, full_reharvest: pd.DataFrame, tmp_path: Path, phase: str, delay: float
) -> None:
    url = first_harvest(tmp_path)
    before = _dump(url)
    child = subprocess.Popen([sys.executable, str(HELPER), url, str(ROWS)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == phase:
            break
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()

    # On PostgreSQL the server rolls the dead child's transaction back once it notices; recover()
    # waits for that on the run's row lock.
    store = Store(make_engine(url))
    killed = store.recover()
    after = _dump(url)
    if killed:
        pd.testing.assert_frame_equal(after, before)  # byte for byte, provenance included
        assert store.run(killed[0]).status == "killed"
    else:  # the kill came after the commit: then all of the new harvest is there
        pd.testing.assert_frame_equal(_content(after), full_reharvest)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM stage_residents")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM run WHERE status = 'running'")) == 0
    store.engine.dispose()
