"""A run killed with SIGKILL while staging or publishing leaves the snapshot as it was (row by row)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from store import Store, make_engine
from tests.store_helpers import harvest, people

ROWS = 60_000
HELPER = Path(__file__).with_name("store_helpers.py")


def _copy(source: Path, target: Path) -> None:
    for part in source.parent.glob(source.name + "*"):  # the database and its WAL files
        shutil.copy(part, target.parent / part.name.replace(source.name, target.name))


def _dump(db: Path) -> pd.DataFrame:
    with make_engine(f"sqlite:///{db}").connect() as conn:
        return pd.read_sql("SELECT * FROM snap_residents ORDER BY id_number", conn)


def _content(frame: pd.DataFrame) -> pd.DataFrame:
    """What the records say, without the run ids that differ between two runs of the same harvest."""
    return frame.assign(gone=frame["gone_run"].notna())[["id_number", "name", "address", "gone"]]


@pytest.fixture(scope="module")
def first_harvest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("base") / "harvest.db"
    store = Store(make_engine(f"sqlite:///{db}"))
    harvest(store, people(ROWS))
    store.engine.dispose()
    return db


@pytest.fixture(scope="module")
def full_reharvest(first_harvest: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    db = tmp_path_factory.mktemp("after") / "harvest.db"
    _copy(first_harvest, db)
    subprocess.run([sys.executable, str(HELPER), str(db), str(ROWS)], check=True, capture_output=True)
    return _content(_dump(db))


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
    first_harvest: Path, full_reharvest: pd.DataFrame, tmp_path: Path, phase: str, delay: float
) -> None:
    db = tmp_path / "harvest.db"
    _copy(first_harvest, db)
    before = _dump(db)
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(db), str(ROWS)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == phase:
            break
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()

    store = Store(make_engine(f"sqlite:///{db}"))
    killed = store.recover()
    after = _dump(db)
    if killed:
        pd.testing.assert_frame_equal(after, before)  # byte for byte, provenance included
        assert store.run(killed[0]).status == "killed"
    else:  # the kill came after the commit: then all of the new harvest is there
        pd.testing.assert_frame_equal(_content(after), full_reharvest)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM stage_residents")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM run WHERE status = 'running'")) == 0
