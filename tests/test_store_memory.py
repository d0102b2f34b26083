"""A run's records are staged as they arrive: memory does not grow with the size of the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import resource, sys
from store import Store, make_engine
from tests.store_helpers import Resident

def rows(n):
    for i in range(n):
        yield {"id_number": f"ID{i:07d}", "name": f"居民{i}", "address": f"东湖花园{i % 97}栋"}

store = Store(make_engine(f"sqlite:///{sys.argv[1]}"))
for attempt in range(2):  # the second run is a re-harvest: every record matched, none new
    run = store.begin_run(robot="r", dataset="residents", model=Resident, system="s", account="a", scope="c")
    store.stage(run, rows(int(sys.argv[2])))
    store.publish(run)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mib(tmp_path: Path, rows: int) -> int:
    db = tmp_path / f"{rows}.db"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), str(rows)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    return int(out.stdout.strip())


def test_a_run_of_200000_records_stays_within_a_memory_bound(tmp_path: Path) -> None:
    small, large = _peak_mib(tmp_path, 20_000), _peak_mib(tmp_path, 200_000)
    # Holding 180,000 more records in memory would cost well over 60 MiB; streaming costs next to nothing.
    assert large - small < 40, f"peak RSS {small} MiB at 20,000 records but {large} MiB at 200,000"
