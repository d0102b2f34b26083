"""Store benchmark: first harvest, re-harvest, and search, against a bare load of the same rows.

    .venv/bin/python bench/store.py [--persons 1000000] [--postgresql [URL]]

(a) loads the persons of a sandbox world as a first harvest (stage + publish);
(b) re-harvests them with 1% changed and 0.5% gone;
(c) loads the same rows into a bare table of the same columns: plain ``sqlite3.executemany`` on
    SQLite, one ``COPY`` on PostgreSQL.
Prints rows/s, ratios to the baseline, peak memory, and p50/p95 of each kind of search.

``--postgresql URL`` runs it on that (empty) database; ``--postgresql`` alone on a private server
started for the run (tests/services.py: fsync off, so its writes are cheaper than a real server's).

The store is fed the way the robot runtime feeds it (``robots/_runner.py``): the runtime
validates each scraped row into the robot's record class and stages ``Record`` instances in
batches of ``STAGE_BATCH``.  That validation is the runtime's work, done whether or not the
store keeps the record; it is timed separately and printed on its own line, so (a) and (b) are
the store's share: staging (row tuples, ID check, content hash, inserts) and publishing.
The baseline's tuples are built outside its timing in the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import generate_world
from store import Access, Field, Record, Snapshot, Store, make_engine

FIELDS = ["id_number", "name", "phone", "address", "household_no"]
STAGE_BATCH = 2_000  # records per store.stage call, as robots/_runner.py stages them


class Person(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    phone: str = Field(role="phone", title="手机号")
    address: str = Field(role="address", title="住址")
    household_no: str = Field(role="household", title="户号")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def harvest(store: Store, rows: list[dict[str, str]]) -> tuple[float, float]:
    """One run as the runtime makes it: (seconds in the store, seconds validating rows into records)."""
    validating = 0.0
    started = time.perf_counter()
    run_id = store.begin_run(
        robot="persons", dataset="persons", model=Person, system="population", account="bench", scope="bench"
    )
    for start in range(0, len(rows), STAGE_BATCH):
        before = time.perf_counter()
        batch = [Person.model_validate(row) for row in rows[start : start + STAGE_BATCH]]
        validating += time.perf_counter() - before
        store.stage(run_id, batch)
    store.publish(run_id)
    return time.perf_counter() - started - validating, validating


BARE_TABLE = f"CREATE TABLE bare_persons ({', '.join(f + ' TEXT' for f in FIELDS)}, PRIMARY KEY (id_number))"


def sqlite_baseline(rows: list[dict[str, str]], folder: Path) -> float:
    conn = sqlite3.connect(folder / "bare.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(BARE_TABLE)
    tuples = [tuple(r[f] for f in FIELDS) for r in rows]

    def insert() -> None:
        with conn:
            conn.executemany(f"INSERT INTO bare_persons VALUES ({', '.join('?' * len(FIELDS))})", tuples)

    seconds = timed(insert)
    conn.close()
    return seconds


def copy_baseline(rows: list[dict[str, str]], engine: sa.Engine) -> float:
    """One COPY of the rows into an empty table in one transaction, through the store's own driver."""
    tuples = [tuple(r[f] for f in FIELDS) for r in rows]
    with engine.begin() as conn:
        conn.exec_driver_sql(BARE_TABLE)
    raw = engine.raw_connection()
    try:

        def copy() -> None:
            statement = f"COPY bare_persons ({', '.join(FIELDS)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as out:
                for row in tuples:
                    out.write_row(row)
            raw.commit()

        return timed(copy)
    finally:
        raw.close()


def sizes(engine: sa.Engine) -> str:
    """PostgreSQL: the search index's table and GIN index against the snapshot (with its indexes)."""
    parts = {
        "search table": "pg_table_size('search_persons')",
        "its GIN index": "pg_relation_size('search_persons_grams')",
        "its key index": "pg_relation_size('search_persons_pkey')",
        "snapshot with its indexes": "pg_total_relation_size('snap_persons')",
    }
    query = "SELECT " + ", ".join(f"{sql} / 1048576.0" for sql in parts.values())
    with engine.connect() as conn:
        mib = conn.execute(sa.text(query)).one()
    return "sizes: " + ", ".join(f"{name} {size:.0f} MiB" for name, size in zip(parts, mib, strict=True))


@contextlib.contextmanager
def database(postgresql: str | None, folder: Path) -> Iterator[str]:
    """The URL the store is benchmarked on: an SQLite file, the given PostgreSQL database, or a new
    database on a private PostgreSQL server that lives as long as the run."""
    if postgresql is None:
        yield f"sqlite:///{folder / 'harvest.db'}"
    elif postgresql:
        yield postgresql
    else:
        from tests.services import postgres_server  # the tests' private server: initdb + pg_ctl

        with postgres_server() as server:
            yield server.create_database()


def latencies(snapshot: Snapshot, probes: list[str]) -> tuple[float, float]:
    access = Access(actor="bench", reveal=True, reason="benchmark")
    times = [
        timed(lambda p=p: snapshot.query("persons", search=p, limit=200, access=access)) * 1000
        for p in probes
    ]
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=20, help="searches of each kind")
    parser.add_argument(
        "--postgresql",
        nargs="?",
        const="",
        metavar="URL",
        help="on PostgreSQL: this empty database, or without URL a private server started for the run",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    with database(args.postgresql, folder) as url:
        run(args, url, folder)


def run(args: argparse.Namespace, url: str, folder: Path) -> None:
    persons = generate_world(seed=5, persons=args.persons).persons
    rows = persons[FIELDS].to_dict(orient="records")
    rng = random.Random(5)
    changed = [dict(r) for r in rows]
    for row in rng.sample(changed, len(changed) // 100):
        row["address"] += "（已迁）"
    kept = set(rng.sample(range(len(changed)), len(changed) - len(changed) // 200))
    second = [row for i, row in enumerate(changed) if i in kept]

    store = Store(make_engine(url))
    sqlite = store.engine.dialect.name == "sqlite"
    first_s, first_validation = harvest(store, rows)
    second_s, second_validation = harvest(store, second)
    bare_s = sqlite_baseline(rows, folder) if sqlite else copy_baseline(rows, store.engine)
    bare = "(c) bare sqlite3.executemany" if sqlite else "(c) bare COPY"
    n = len(rows)

    print(f"{'':34}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'vs bare':>10}")
    for label, count, seconds in (
        ("(a) first harvest", n, first_s),
        ("(b) re-harvest 1% chg, 0.5% gone", len(second), second_s),
        (bare, n, bare_s),
    ):
        rate = count / seconds
        print(f"{label:34}{count:>12,}{seconds:>10.2f}{rate:>12,.0f}{rate / (n / bare_s):>9.2f}x")
    print(
        f"validation into records by the runtime, not in (a)/(b): {first_validation:.2f} s and "
        f"{second_validation:.2f} s (with it, (a) would be {bare_s / (first_s + first_validation):.2f}x)"
    )
    server = "" if sqlite else " (this process; the server's own memory is not in it)"
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB{server}")
    if not sqlite:
        print(sizes(store.engine))

    snapshot = Snapshot(store.engine)
    sample = persons.sample(args.probes, random_state=5)
    kinds = {
        "2-character name": [n for n in persons["name"] if len(n) == 2][: args.probes],
        "ID fragment (8 digits)": [i[6:14] for i in sample["id_number"]],
        "phone tail (6 digits)": [p[-6:] for p in sample["phone"] if p] or ["000000"],
        "address fragment": [a[:7] for a in sample["address"]],
    }
    print(f"\n{'search (LIMIT 200)':34}{'p50 ms':>10}{'p95 ms':>10}")
    for kind, probes in kinds.items():
        p50, p95 = latencies(snapshot, probes)
        print(f"{kind:34}{p50:>10.1f}{p95:>10.1f}")


if __name__ == "__main__":
    main()
