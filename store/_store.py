"""Runs are staged as their records arrive and published in one transaction when they end well.

A failed, cancelled or killed run leaves the snapshot exactly as it was: its rows only
ever lived in the staging table, which ``recover()`` clears on the next start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from machine import pid_alive, private_file, tighten, utc_now, write_private
from store._errors import PublishRefused, StoreFull, UnknownRun, is_disk_full
from store._record import Record, RecordSpec, record_spec
from store._search import TextIndex
from store._snapshot import Access, Snapshot, searched_fields, searched_index
from store._tables import (
    LOOKUP_PREFIX,
    Audit,
    Change,
    DatasetInfo,
    Run,
    create_tables,
    ensure,
    key_text,
    snapshot_table,
    stage_table,
)

BATCH = 10_000  # rows per staging transaction: few commits, still bounded memory
SHRINK_RATIO = 0.9
# Kept beside a SQLite database and given up when its disk fills: SQLite needs room even to record
# that a run failed, and a run left `running` on a full disk would wait for the next start to be closed.
RESERVE_BYTES = 2 << 20


@dataclass(frozen=True)
class Dataset:
    name: str
    spec: RecordSpec
    snapshot: sa.Table
    stage: sa.Table
    search: TextIndex | None  # None for an SQLite without FTS5, or no searched field: queries use LIKE


class Store:
    """The snapshot database: datasets, runs, history."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _keep_private(engine)
        self._reserve = _reserve(engine)
        tables = [Run.__table__, Change.__table__, DatasetInfo.__table__, Audit.__table__]
        create_tables(engine, tables)  # type: ignore[arg-type]
        self._datasets: dict[str, Dataset] = {}

    def dataset(self, name: str, model: type[Record]) -> Dataset:
        """The tables of dataset ``name`` for records of ``model``, created or upgraded as needed."""
        known = self._datasets.get(name)
        if known is not None and known.spec.model is model:
            return known
        spec = record_spec(model)
        metadata = sa.MetaData()  # one per definition: a redefined record must not collide with the old one
        snapshot, stage = snapshot_table(metadata, name, spec), stage_table(metadata, name, spec)
        ensure(self.engine, snapshot, spec)
        ensure(self.engine, stage, spec)
        search = searched_index(self.engine, name, spec.key, spec.roles)
        if search is not None:
            self._ensure_search(search, snapshot)
        info = {
            "name": name,
            "model": model.__name__,
            "key": json.dumps(spec.key),
            "roles": json.dumps(spec.roles),
            "columns": json.dumps(spec.names),
            "labels": json.dumps(spec.labels, ensure_ascii=False),
            "updated_at": utc_now(),  # the readers' sign that an info changed (Snapshot._known)
        }
        with self.engine.begin() as conn:
            # One upsert, not a read and a write: processes starting together (a pool of workers on a
            # new database) would both find the info missing and the second insert would fail.
            upsert = _insert(conn)(DatasetInfo.__table__).values(info)  # type: ignore[attr-defined]
            later = {column: upsert.excluded[column] for column in info if column != "name"}
            conn.execute(upsert.on_conflict_do_update(index_elements=["name"], set_=later))
        self._datasets[name] = Dataset(name, spec, snapshot, stage, search)
        return self._datasets[name]

    def _ensure_search(self, search: TextIndex, snapshot: sa.Table) -> None:
        """Keep the dataset's search index in step with its searched fields.

        A new index, or one whose fields changed, is built from every row already in the
        snapshot: records of communities not harvested since must stay findable. Processes starting
        together (a pool's workers on a new database) build it once: the build holds the index's lock
        and looks again under it, and an index found with no dataset info yet is another process's,
        just made for the same fields, never one to drop.
        """
        with self.engine.connect() as conn:
            if _search_current(conn, search):
                return
        with self.engine.begin() as conn:
            search.lock(conn)
            if _search_current(conn, search):
                return
            for table in search.tables:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            search.ensure(conn)
            for run_id in conn.execute(sa.select(snapshot.c.last_changed_run).distinct()).scalars():
                search.refresh(conn, snapshot, run_id)

    def begin_run(
        self,
        *,
        robot: str,
        dataset: str,
        model: type[Record],
        system: str,
        account: str,
        scope: str,
        run_id: str | None = None,
    ) -> str:
        """A new run; ``run_id`` is the one a scheduler minted for it (a new one if None)."""
        self.dataset(dataset, model)
        run = Run(
            id=run_id or uuid.uuid4().hex,
            robot=robot,
            dataset=dataset,
            system=system,
            account=account,
            scope=scope,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        with self._room(), Session(self.engine) as session:
            session.add(run)
            session.commit()
            return run.id

    def stage(self, run_id: str, records: Iterable[Record | dict[str, Any]]) -> int:
        """Stage ``records`` for ``run_id`` in batches; a record seen twice counts once (the last wins)."""
        data = self._running_dataset(run_id)
        staged = 0
        rows = data.spec.rows(records, lead=(run_id,))
        write = _stage_writer(self.engine, data.stage)
        for batch in iter(lambda: list(islice(rows, BATCH)), []):
            with self._room(), self.engine.begin() as conn:
                write(conn, batch)
            staged += len(batch)
        return staged

    def publish(self, run_id: str, *, complete: bool = True, pages: int = 0) -> Run:
        """Make the run's records the snapshot, in one transaction; a redelivered finished run is a no-op."""
        run = self.run(run_id)
        if run.status != "running":
            return run
        data = self._datasets[run.dataset]
        with self._room(), self.engine.begin() as conn:
            # Take the write lock first.  SQLite's driver begins the transaction at the first write:
            # reading before it (the guard's counts, whether the snapshot is empty) could see a state
            # another publish then changes, and a transaction that read first and writes later fails
            # at once with "database is locked" when another connection wrote in between.
            # PostgreSQL locks rows, not the database: the snapshot's table lock keeps two publishes of
            # the dataset from interleaving, while readers (ACCESS SHARE) and other datasets go on.
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'LOCK TABLE "{data.snapshot.name}" IN SHARE ROW EXCLUSIVE MODE')
            runs = Run.__table__.c  # type: ignore[attr-defined]
            conn.execute(sa.update(Run.__table__).where(runs.id == run_id).values(status="running"))
            previous = self._last_good(conn, run.dataset, run.scope)
            # Into an empty snapshot every record is new and none is gone: a plain sorted insert.
            first = _first_load_applies(conn, data) and not (complete and previous)
            source, mine = (data.stage, data.stage.c.run_id == run_id)
            if first:
                seen = 0
            else:
                source, mine = _run_rows(conn, data, run_id), sa.true()
                seen = conn.scalar(sa.select(sa.func.count()).select_from(source)) or 0
            if complete and previous and seen < SHRINK_RATIO * previous:
                refusal = (
                    f"本次运行只看到 {seen} 条记录，而上次成功的运行看到 {previous} 条：页面布局可能已变化。"
                    "没有发布任何数据；请检查该系统后重新运行"
                )
            else:
                refusal = ""
                if first:
                    seen, counts = _first_load(conn, data, run)
                else:
                    counts = _publish(conn, data, run, complete, source, mine)
                if data.search is not None:
                    data.search.refresh(conn, data.snapshot, run_id)
                _clear_stage(conn, data, run_id, seen)
                _end_run(conn, run_id, status="ok", seen=seen, pages=pages, complete=complete, **counts)
            if conn.dialect.name == "sqlite":  # PostgreSQL's goes with the commit (ON COMMIT DROP)
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS temp."{_run_rows_name(data)}"')
        if refusal:
            self.fail(run_id, PublishRefused.kind, refusal)
            raise PublishRefused(refusal)
        return self.run(run_id)

    def fail(
        self, run_id: str, kind: str, message: str, *, status: str = "failed", artifacts: str | None = None
    ) -> Run:
        """End a run without touching the snapshot: record why and where its evidence is; drop its staging."""
        run = self.run(run_id)
        data = self._datasets.get(run.dataset)
        outcome = {"status": status, "failure_kind": kind, "message": message, "artifacts": artifacts}
        try:
            with self._room(), self.engine.begin() as conn:
                if data is not None:
                    conn.execute(sa.delete(data.stage).where(data.stage.c.run_id == run_id))
                _end_run(conn, run_id, **outcome)
        except StoreFull:  # even with the reserve given up: record the outcome at least, keep the staged rows
            with self._room(), self.engine.begin() as conn:
                _end_run(conn, run_id, **outcome)
        return self.run(run_id)

    @contextlib.contextmanager
    def _room(self) -> Iterator[None]:
        """A write that meets a full disk raises ``StoreFull``, with the reserve given up for what follows."""
        try:
            yield
        except (sa.exc.DBAPIError, OSError) as exc:
            if not is_disk_full(exc):
                raise
            if self._reserve is not None:
                self._reserve.unlink(missing_ok=True)
            url = self.engine.url.render_as_string(hide_password=True)
            where = self._reserve.parent if self._reserve else url
            raise StoreFull(
                f"数据库所在的磁盘已满（{where}）：腾出空间后重新运行；本次没有发布，快照保持原样"
            ) from exc

    def recover(self) -> list[str]:
        """Mark runs of dead processes on this host ``killed`` and clear their staging; returns their ids."""
        host = socket.gethostname()
        with Session(self.engine) as session:
            running = (
                session.exec(sa.select(Run).where(Run.status == "running", Run.host == host)).scalars().all()
            )  # type: ignore[call-overload]
        dead = [run for run in running if not pid_alive(run.pid)]
        inspector = sa.inspect(self.engine)
        with self.engine.begin() as conn:
            for run in dead:
                stage = f"stage_{run.dataset}"
                if inspector.has_table(stage):
                    conn.execute(sa.text(f'DELETE FROM "{stage}" WHERE run_id = :id'), {"id": run.id})
                _end_run(
                    conn,
                    run.id,
                    status="killed",
                    failure_kind="killed",
                    message="运行它的进程中途结束，没有发布任何数据",
                )
        return [run.id for run in dead]

    def purge(self, days: int, *, actor: str) -> dict[str, int]:
        """Delete gone records and history older than ``days`` (PIPL: no longer than necessary); audited."""
        if days < 1:
            raise ValueError("保留天数至少为 1 天")
        cutoff = utc_now() - dt.timedelta(days=days)
        runs = Run.__table__.c  # type: ignore[attr-defined]
        old_runs = sa.select(runs.id).where(runs.finished_at < cutoff)
        counts = {}
        with self.engine.begin() as conn:
            changes = Change.__table__  # type: ignore[attr-defined]
            counts["history"] = conn.execute(sa.delete(changes).where(changes.c.at < cutoff)).rowcount
            for info in conn.execute(sa.select(DatasetInfo.__table__.c.name)).scalars():  # type: ignore[attr-defined]
                snap = sa.Table(f"snap_{info}", sa.MetaData(), autoload_with=conn)
                counts[info] = conn.execute(sa.delete(snap).where(snap.c.gone_run.in_(old_runs))).rowcount
        Snapshot(self.engine).audit(
            Access(actor=actor), "purge", None, {"days": days, **counts}, sum(counts.values())
        )
        return counts

    def run(self, run_id: str) -> Run:
        with Session(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise UnknownRun(run_id)
            return run

    def _running_dataset(self, run_id: str) -> Dataset:
        runs = Run.__table__.c  # type: ignore[attr-defined]
        with self.engine.connect() as conn:  # asked for every staged batch: Core, not an ORM session
            run = conn.execute(sa.select(runs.status, runs.dataset).where(runs.id == run_id)).first()
        if run is None:
            raise UnknownRun(run_id)
        if run.status != "running":
            raise UnknownRun(f"运行 {run_id} 的状态是 {run.status}，已不在进行中")
        return self._datasets[run.dataset]

    @staticmethod
    def _last_good(conn: sa.Connection, dataset: str, scope: str) -> int:
        runs = Run.__table__.c  # type: ignore[attr-defined]
        query = (
            sa.select(runs.seen)
            .where(runs.dataset == dataset, runs.scope == scope, runs.status == "ok", runs.complete.is_(True))
            .order_by(runs.finished_at.desc())
            .limit(1)
        )
        return conn.scalar(query) or 0


def _insert(conn: sa.Connection) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, which has ON CONFLICT (both SQLite's and PostgreSQL's do)."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _stage_writer(engine: Engine, table: sa.Table) -> Callable[[sa.Connection, list[tuple[Any, ...]]], None]:
    """A plain append of ``(run_id, *values, content_hash, flags)`` rows; ``seq`` numbers them.

    Staging is the hot path of every run: on SQLite the driver's own executemany costs a third of
    SQLAlchemy's per row; on PostgreSQL (psycopg 3) one COPY streams the batch, on the transaction's
    own connection, and ``seq`` (a sequence) still numbers the rows in the order they came.
    """
    names = [c.name for c in table.columns if c.name != "seq"]
    columns = ", ".join(f'"{n}"' for n in names)
    if engine.dialect.name == "sqlite":
        marks = ", ".join("?" * len(names))
        sql = f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})'
        return lambda conn, rows: conn.exec_driver_sql(sql, rows)
    if engine.dialect.driver == "psycopg":
        copy = f'COPY "{table.name}" ({columns}) FROM STDIN'

        def write(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
            with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(copy) as stream:  # type: ignore[union-attr]
                for row in rows:
                    stream.write_row(row)

        return write
    insert = sa.insert(table)
    return lambda conn, rows: conn.execute(insert, [dict(zip(names, row, strict=True)) for row in rows])


def _run_rows_name(data: Dataset) -> str:
    return f"{data.stage.name}_run"


def _run_rows(conn: sa.Connection, data: Dataset, run_id: str) -> sa.Table:
    """The run's staged rows in a temporary table keyed by the natural key (last of a key wins).

    The table is the connection's own, so it is written neither to the WAL nor to the database
    file, takes no lock other runs' staging would wait on, and vanishes with the connection if the
    process dies (on PostgreSQL, with the transaction too).  One sorted INSERT ... SELECT fills it;
    every publish statement then finds a run's row by key in it.
    """
    stage, key = data.stage, data.spec.key
    name = _run_rows_name(data)
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS temp."{name}"')
    kept = [c.name for c in stage.columns if c.name not in {"seq", "run_id"}]
    table = sa.Table(
        name,
        sa.MetaData(),
        *(sa.Column(c, stage.c[c].type, primary_key=c in key) for c in kept),
        prefixes=["TEMP"],
        sqlite_with_rowid=False,
        postgresql_on_commit="DROP",
    )
    table.create(conn)
    keys = [stage.c[k] for k in key]
    rows = sa.select(*(stage.c[c] for c in kept)).where(stage.c.run_id == run_id)
    if sqlite:
        insert = sqlite_insert(table).from_select(kept, rows.order_by(*keys, stage.c.seq))
        later = {c: insert.excluded[c] for c in kept if c not in key}
        conn.execute(insert.on_conflict_do_update(index_elements=list(key), set_=later))
    else:  # DISTINCT ON keeps the first row of each key in the order: the one staged last
        last = rows.ext(distinct_on(*keys)).order_by(*keys, stage.c.seq.desc())
        conn.execute(sa.insert(table).from_select(kept, last))
        conn.exec_driver_sql(f'ANALYZE "{name}"')  # a temporary table has no statistics for the planner
    return table


def _clear_stage(conn: sa.Connection, data: Dataset, run_id: str, seen: int) -> None:
    """Drop the run's staging rows at the end of its publish."""
    stage = data.stage
    # SQLite: the publish holds the database's write lock, so when the table holds this run's rows
    # only, nobody can add one before the DELETE, and a DELETE without WHERE frees whole pages.
    if conn.dialect.name == "sqlite" and conn.scalar(sa.select(sa.func.count()).select_from(stage)) == seen:
        conn.execute(sa.delete(stage))
    else:
        conn.execute(sa.delete(stage).where(stage.c.run_id == run_id))


def _end_run(conn: sa.Connection, run_id: str, **values: Any) -> None:
    """Close a run's record with its outcome, inside the caller's transaction."""
    runs = Run.__table__  # type: ignore[attr-defined]
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(finished_at=utc_now(), **values))


def _reserve(engine: Engine) -> Path | None:
    """The reserve file of a SQLite database, written now if it is missing and the disk has room."""
    database = _sqlite_file(engine)
    if database is None:
        return None
    path = database.with_name(database.name + "-reserve")
    if not path.exists() or path.stat().st_size < RESERVE_BYTES:
        with contextlib.suppress(OSError):  # no room for it: the disk is the operator's to free
            write_private(path, bytes(RESERVE_BYTES))  # real bytes: a sparse file would hold no room
    return path


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database on disk; None for other databases and in-memory ones."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _keep_private(engine: Engine) -> None:
    """A SQLite file is made 0600 before SQLite first opens it (it would make it 0644 under the usual
    umask); its WAL, shared-memory and journal files then take the database's mode.  Any of them found
    wider, made before, is tightened."""
    database = _sqlite_file(engine)
    if database is None:
        return
    path = private_file(database)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _first_load_applies(conn: sa.Connection, data: Dataset) -> bool:
    """True on SQLite when the snapshot holds no record at all (a dataset's first harvest)."""
    if conn.dialect.name != "sqlite":
        # PostgreSQL refuses an upsert that meets the same key twice in one statement; its run's rows
        # (``_run_rows``) are one per key already, so the general publish appends them just as fast.
        return False
    return conn.execute(sa.select(sa.literal(1)).select_from(data.snapshot).limit(1)).first() is None


def _first_load(conn: sa.Connection, data: Dataset, run: Run) -> tuple[int, dict[str, int]]:
    """Publish into an empty snapshot: every staged key is new, nothing can be changed, gone or back.

    One INSERT ... SELECT sorts the run's rows by key (SQLite's sorter, no staging index) and
    appends them; a key staged twice meets its own earlier row and the later one wins, as in
    ``_index_stage``.  The ``new`` history is then read back from the snapshot.
    """
    snap, stage, key, names = data.snapshot, data.stage, data.spec.key, data.spec.names
    columns = [
        *names,
        "content_hash",
        "flags",
        "scope",
        "first_seen_run",
        "last_seen_run",
        "last_changed_run",
    ]
    rows = (
        sa.select(
            *(stage.c[n] for n in names),
            stage.c.content_hash,
            stage.c.flags,
            sa.literal(run.scope),
            sa.literal(run.id),
            sa.literal(run.id),
            sa.literal(run.id),
        )
        .where(stage.c.run_id == run.id)
        .order_by(*(stage.c[k] for k in key), stage.c.seq)
    )
    insert = sqlite_insert(snap).from_select(columns, rows)
    kept = [*(n for n in names if n not in key), "content_hash", "flags"]
    # Lookup indexes are built after the insert, by one sort each, rather than a B-tree insert at a
    # random place per record; the transaction makes that invisible to readers.
    lookups = [index for index in snap.indexes if index.name and index.name.startswith(LOOKUP_PREFIX)]
    for index in lookups:
        conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{index.name}"')
    conn.execute(
        insert.on_conflict_do_update(index_elements=list(key), set_={n: insert.excluded[n] for n in kept})
    )
    for index in lookups:
        index.create(conn)
    seen = conn.scalar(sa.select(sa.func.count()).select_from(snap)) or 0
    _history(conn, data, run, "new", sa.true(), utc_now())
    return seen, {"new": seen, "changed": 0, "unchanged": 0, "gone": 0, "back": 0}


def _publish(
    conn: sa.Connection,
    data: Dataset,
    run: Run,
    complete: bool,
    stage: sa.Table,
    mine: sa.ColumnElement[bool],
) -> dict[str, int]:
    """Publish the run's rows -- those of ``stage`` where ``mine`` holds, one per key -- into the snapshot."""
    snap, key, names = data.snapshot, data.spec.key, data.spec.names
    matches = sa.and_(*(stage.c[k] == snap.c[k] for k in key), mine)
    now = utc_now()
    counts = {"new": 0, "changed": 0, "unchanged": 0, "gone": 0, "back": 0}

    # Unchanged first: after the changed rows are updated below, their hashes match too.  Records
    # already in the run's scope (nearly all) keep it: setting the scope anyway rewrites their
    # entries in the scope index, which tripled the cost of this pass.
    same = sa.exists().where(matches, stage.c.content_hash == snap.c.content_hash)
    current = snap.c.gone_run.is_(None)
    for here, values in (
        (snap.c.scope == run.scope, {"last_seen_run": run.id}),
        (snap.c.scope != run.scope, {"last_seen_run": run.id, "scope": run.scope}),
    ):
        unchanged = conn.execute(sa.update(snap).where(here, current, same).values(values))
        counts["unchanged"] += unchanged.rowcount

    # Changed or back: key-ordered batches, so a run that changes everything still stays in bounded memory.
    for batch in _differing(conn, data, stage, mine):
        history, updates = [], []
        for row in batch:
            before = {n: row[f"old_{n}"] for n in names}
            after = {n: row[n] for n in names}
            diff = {n: [_json(before[n]), _json(after[n])] for n in names if before[n] != after[n]}
            kind = "back" if row["old_gone_run"] is not None else "changed"
            counts[kind] += 1
            history.append(
                {
                    "run_id": run.id,
                    "dataset": data.name,
                    "key": "|".join(str(row[k]) for k in key),
                    "kind": kind,
                    "fields": json.dumps(diff, ensure_ascii=False) if diff else None,
                    "at": now,
                }
            )
            changed_run = run.id if diff else row["old_last_changed_run"]
            updates.append(
                {
                    **{f"b_{n}": row[n] for n in names},
                    "b_hash": row["content_hash"],
                    "b_flags": row["flags"],
                    "b_changed": changed_run,
                    **{f"k_{k}": row[k] for k in key},
                }
            )
        conn.execute(sa.insert(Change.__table__), history)  # type: ignore[arg-type]
        conn.execute(
            sa.update(snap)
            .where(*(snap.c[k] == sa.bindparam(f"k_{k}") for k in key))
            .values(
                {n: sa.bindparam(f"b_{n}") for n in names if n not in key}
                | {
                    "content_hash": sa.bindparam("b_hash"),
                    "flags": sa.bindparam("b_flags"),
                    "last_changed_run": sa.bindparam("b_changed"),
                    "last_seen_run": run.id,
                    "gone_run": None,
                    "scope": run.scope,
                }
            ),
            updates,
        )

    # Gone before new: a record inserted by this run is in its staging, so it is never gone.
    if complete:
        missing = sa.and_(snap.c.scope == run.scope, snap.c.gone_run.is_(None), ~sa.exists().where(matches))
        counts["gone"] = conn.execute(sa.update(snap).where(missing).values(gone_run=run.id)).rowcount
        if counts["gone"]:  # read back through the scope index: no second anti-join
            _history(
                conn, data, run, "gone", sa.and_(snap.c.scope == run.scope, snap.c.gone_run == run.id), now
            )
    inserted = conn.execute(
        sa.insert(snap).from_select(
            [*names, "content_hash", "flags", "scope", "first_seen_run", "last_seen_run", "last_changed_run"],
            sa.select(
                *(stage.c[n] for n in names),
                stage.c.content_hash,
                stage.c.flags,
                sa.literal(run.scope),
                sa.literal(run.id),
                sa.literal(run.id),
                sa.literal(run.id),
            ).where(mine, ~sa.exists().where(matches)),
        ).execution_options(preserve_rowcount=True)  # else SQLAlchemy 2.1 with psycopg reports -1
    )
    counts["new"] = inserted.rowcount
    if counts["new"]:  # the rows this run first saw, found through the last_changed_run index
        _history(
            conn,
            data,
            run,
            "new",
            sa.and_(snap.c.last_changed_run == run.id, snap.c.first_seen_run == run.id),
            now,
        )

    return counts


def _history(
    conn: sa.Connection, data: Dataset, run: Run, kind: str, rows: sa.ColumnElement[bool], at: dt.datetime
) -> None:
    """One history row of ``kind``, at ``at``, for each snapshot row where ``rows`` holds."""
    snap = data.snapshot
    keys = sa.select(
        sa.literal(run.id),
        sa.literal(data.name),
        key_text(snap, data.spec.key),
        sa.literal(kind),
        sa.literal(at),
    ).where(rows)
    conn.execute(
        sa.insert(Change.__table__).from_select(["run_id", "dataset", "key", "kind", "at"], keys)  # type: ignore[arg-type]
    )


def _differing(
    conn: sa.Connection, data: Dataset, stage: sa.Table, mine: sa.ColumnElement[bool]
) -> Iterator[list[sa.RowMapping]]:
    """The run's rows whose snapshot row differs or is gone, with the old values as ``old_*``, in batches."""
    snap, key = data.snapshot, data.spec.key
    old = [snap.c[n].label(f"old_{n}") for n in data.spec.names]
    query = (
        sa.select(
            stage,
            *old,
            snap.c.gone_run.label("old_gone_run"),
            snap.c.last_changed_run.label("old_last_changed_run"),
        )
        .join(snap, sa.and_(*(stage.c[k] == snap.c[k] for k in key)))
        .where(
            mine,
            sa.or_(stage.c.content_hash != snap.c.content_hash, snap.c.gone_run.is_not(None)),
        )
        .order_by(*(stage.c[k] for k in key))
        .limit(BATCH)
    )
    after: tuple[Any, ...] | None = None
    while True:
        page = (
            query if after is None else query.where(sa.tuple_(*(stage.c[k] for k in key)) > sa.tuple_(*after))
        )
        batch = list(conn.execute(page).mappings())
        if not batch:
            return
        yield batch
        after = tuple(batch[-1][k] for k in key)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _search_current(conn: sa.Connection, search: TextIndex) -> bool:
    """Whether ``search``'s index exists for the fields the dataset's info says it indexes."""
    info = DatasetInfo.__table__.c  # type: ignore[attr-defined]
    roles = conn.execute(sa.select(info.roles).where(info.name == search.dataset)).scalar()
    indexed = searched_fields(json.loads(roles)) if roles else list(search.fields)
    return sa.inspect(conn).has_table(search.name) and indexed == list(search.fields)
