"""Staging and publishing on a real SQLite file and a real PostgreSQL: new, changed, unchanged, gone, back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from store import (
    Access,
    Field,
    PublishRefused,
    Record,
    RecordDeclarationError,
    Run,
    SchemaMismatch,
    Snapshot,
    Store,
    StoreUnavailable,
    make_engine,
)
from tests.services import free_port
from tests.store_helpers import Resident, begin, harvest, people


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(make_engine(database_url))


def snapshot(store: Store, dataset: str = "residents") -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.read_sql(f"SELECT * FROM snap_{dataset} ORDER BY id_number", conn)


def changes(store: Store, run_id: str) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.read_sql(
            sa.text("SELECT * FROM change WHERE run_id = :r ORDER BY key"), conn, params={"r": run_id}
        )


def test_a_first_harvest_makes_every_record_new_with_provenance(store: Store) -> None:
    run = harvest(store, people(5))
    assert (run.status, run.seen, run.new, run.changed, run.gone) == ("ok", 5, 5, 0, 0)
    snap = snapshot(store)
    assert list(snap["id_number"]) == [f"ID{i:06d}" for i in range(5)]
    assert (
        set(snap["first_seen_run"]) == set(snap["last_seen_run"]) == set(snap["last_changed_run"]) == {run.id}
    )
    assert snap["gone_run"].isna().all() and set(snap["scope"]) == {"donghu"}
    assert list(changes(store, run.id)["kind"]) == ["new"] * 5


def test_an_unchanged_reharvest_writes_no_history(store: Store) -> None:
    first = harvest(store, people(5))
    again = harvest(store, people(5))
    assert (again.new, again.changed, again.unchanged, again.gone) == (0, 0, 5, 0)
    assert changes(store, again.id).empty
    snap = snapshot(store)
    assert set(snap["last_seen_run"]) == {again.id} and set(snap["last_changed_run"]) == {first.id}


def test_a_changed_field_is_recorded_before_and_after(store: Store) -> None:
    harvest(store, people(5))
    rows = people(5)
    rows[2]["address"] = "西苑小区9栋"
    run = harvest(store, rows)
    assert (run.changed, run.unchanged, run.new) == (1, 4, 0)
    history = changes(store, run.id)
    assert list(history["kind"]) == ["changed"] and history["key"][0] == "ID000002"
    assert json.loads(history["fields"][0]) == {"address": ["东湖花园1栋", "西苑小区9栋"]}
    snap = snapshot(store).set_index("id_number")
    assert (
        snap.loc["ID000002", "address"] == "西苑小区9栋"
        and snap.loc["ID000002", "last_changed_run"] == run.id
    )


def test_records_a_complete_run_missed_are_gone_and_come_back(store: Store) -> None:
    harvest(store, people(10))
    partial = harvest(store, people(9), complete=False)
    assert partial.gone == 0 and snapshot(store)["gone_run"].isna().all()
    complete = harvest(store, people(9))
    assert complete.gone == 1
    snap = snapshot(store).set_index("id_number")
    assert snap.loc["ID000009", "gone_run"] == complete.id and len(snap) == 10  # marked, never deleted
    back = harvest(store, people(10))
    assert (back.back, back.gone) == (1, 0)
    assert snapshot(store)["gone_run"].isna().all()
    assert list(changes(store, back.id)["kind"]) == ["back"]


def test_gone_is_marked_only_within_the_runs_scope(store: Store) -> None:
    harvest(store, people(10), scope="donghu")
    harvest(store, people(10, start=100), scope="xiyuan")
    run = harvest(store, people(10, start=100), scope="xiyuan")
    assert run.gone == 0 and snapshot(store)["gone_run"].isna().all()


def test_the_shrink_guard_refuses_a_run_that_saw_far_fewer_records(store: Store) -> None:
    harvest(store, people(100))
    before = snapshot(store)
    run_id = begin(store)
    store.stage(run_id, people(80))
    with pytest.raises(PublishRefused, match="只看到 80 条记录，而上次成功的运行看到 100 条"):
        store.publish(run_id)
    pd.testing.assert_frame_equal(snapshot(store), before)
    run = store.run(run_id)
    assert (run.status, run.failure_kind) == ("failed", "layout_changed")
    assert harvest(store, people(95)).status == "ok"  # within 90% publishes


def test_a_failed_run_changes_nothing_and_leaves_no_staging(store: Store) -> None:
    harvest(store, people(5))
    before = snapshot(store)
    run_id = begin(store)
    store.stage(run_id, people(3, address="改了"))
    store.fail(run_id, "system_unavailable", "系统无响应")
    pd.testing.assert_frame_equal(snapshot(store), before)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM stage_residents")) == 0
    assert store.publish(run_id).status == "failed"  # a late publish of a failed run does nothing


def test_a_record_seen_twice_in_one_run_counts_once(store: Store) -> None:
    rows = people(3) + people(1)
    run = harvest(store, rows)
    assert (run.seen, run.new) == (3, 3)


def test_publishing_a_finished_run_again_is_a_no_op(store: Store) -> None:
    run = harvest(store, people(3))
    assert store.publish(run.id).new == 3 and len(changes(store, run.id)) == 3


def test_adding_a_field_upgrades_the_table_in_place_keeping_the_data(store: Store) -> None:
    harvest(store, people(4))

    class ResidentWithPhone(Resident):
        phone: str | None = Field(None, role="phone")

    rows = [r | {"phone": "13800000000"} for r in people(4)]
    run = harvest(store, rows, model=ResidentWithPhone)
    snap = snapshot(store)
    assert len(snap) == 4 and set(snap["phone"]) == {"13800000000"}
    assert run.changed == 4  # the new field filled in is a real change


def test_an_incompatible_change_stops_with_a_message_that_names_the_fix(store: Store) -> None:
    harvest(store, people(2))

    class RekeyedResident(Record):
        id_number: str = Field(role="id_number")
        name: str = Field(key=True, role="name")
        address: str

    with pytest.raises(SchemaMismatch, match="自然键从"):
        harvest(store, people(2), model=RekeyedResident)

    class RetypedResident(Record):
        id_number: str = Field(key=True)
        name: int
        address: str

    with pytest.raises(SchemaMismatch, match=r"snap_residents\.name 在数据库里是 TEXT"):
        harvest(store, [], model=RetypedResident)
    assert len(snapshot(store)) == 2


def test_a_misspelt_role_is_refused_where_it_is_declared(store: Store) -> None:
    class Typo(Record):
        id_number: str = Field(key=True, role="idnumber")  # type: ignore[arg-type]

    with pytest.raises(RecordDeclarationError, match="没有 'idnumber' 这个角色"):
        harvest(store, [], model=Typo)


def test_purge_deletes_old_gone_records_and_history_and_is_audited(store: Store) -> None:
    harvest(store, people(10))
    gone_run = harvest(store, people(9))
    with store.engine.begin() as conn:  # age the run that marked ID000009 gone, and all history
        conn.execute(
            sa.text("UPDATE run SET finished_at = '2020-01-01 00:00:00' WHERE id = :r"), {"r": gone_run.id}
        )
        conn.execute(sa.text("UPDATE change SET at = '2020-01-01 00:00:00'"))
    counts = store.purge(30, actor="管理员")
    assert counts == {"history": 11, "residents": 1}
    assert list(snapshot(store)["id_number"]) == [f"ID{i:06d}" for i in range(9)]
    with store.engine.connect() as conn:
        audit = conn.execute(sa.text("SELECT actor, action, rows FROM audit")).one()
    assert tuple(audit) == ("管理员", "purge", 12)


def test_search_survives_adding_a_searched_field(store: Store) -> None:
    harvest(store, people(3), scope="donghu")
    harvest(store, people(3, start=100), scope="xiyuan")

    class ResidentWithPhone(Resident):
        phone: str | None = Field(None, role="phone")

    harvest(store, [r | {"phone": "13912345678"} for r in people(3)], model=ResidentWithPhone, scope="donghu")
    reader = Snapshot(store.engine)
    access = Access(reveal=True, reason="检索测试")
    assert sa.inspect(store.engine).has_table("search_residents")  # the index, not a LIKE scan, answers
    assert list(reader.query("residents", search="居民101", access=access)["id_number"]) == ["ID000101"]
    assert len(reader.query("residents", search="345678", access=access)) == 3


def test_a_first_searched_field_indexes_the_rows_already_there(store: Store) -> None:
    class Plain(Record):
        id_number: str = Field(key=True)
        name: str

    harvest(store, people(3, start=200), scope="xiyuan", model=Plain)
    harvest(store, people(3), scope="donghu", model=Resident)  # name and address become searched
    access = Access(reveal=True, reason="检索测试")
    found = Snapshot(store.engine).query("residents", search="居民201", access=access)
    assert list(found["id_number"]) == ["ID000201"]


def _stage_indexes(store: Store) -> list[str]:
    return [i["name"] for i in sa.inspect(store.engine).get_indexes("stage_residents")]


def test_the_last_of_a_record_seen_twice_wins_and_no_staging_index_outlives_a_publish(store: Store) -> None:
    rows = [*people(3), {"id_number": "ID000001", "name": "居民1", "address": "西苑小区9栋"}]
    run = harvest(store, rows)
    assert (run.seen, run.new) == (3, 3)
    assert snapshot(store).set_index("id_number").loc["ID000001", "address"] == "西苑小区9栋"
    assert _stage_indexes(store) == []  # staging appends without an index; publish makes one for itself
    run_id = begin(store)
    store.stage(run_id, people(1))
    with pytest.raises(PublishRefused):
        store.publish(run_id)
    assert _stage_indexes(store) == []


def test_staging_of_other_runs_survives_a_publish(store: Store) -> None:
    other = begin(store, scope="xiyuan")
    store.stage(other, people(2, start=100))
    harvest(store, people(3))  # donghu publishes while xiyuan is still staging
    assert store.publish(other).new == 2
    assert len(snapshot(store)) == 5


def test_a_staging_table_of_the_keyed_layout_is_moved_with_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'harvest.db'}")
    with engine.begin() as conn:  # as an earlier version left it, with a run's rows in it
        conn.exec_driver_sql(
            "CREATE TABLE stage_residents (run_id TEXT NOT NULL, id_number TEXT NOT NULL, name TEXT NOT NULL,"
            " address TEXT NOT NULL, content_hash TEXT NOT NULL, flags TEXT, PRIMARY KEY (run_id, id_number))"
        )
        conn.exec_driver_sql(
            "INSERT INTO stage_residents VALUES ('r0', 'ID000001', '居民1', '东湖', 'h', NULL)"
        )
    store = Store(engine)
    harvest(store, people(2))
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT seq, run_id, id_number FROM stage_residents")).all()
    assert [tuple(r) for r in left] == [(1, "r0", "ID000001")]


def test_an_unchanged_record_seen_in_another_scope_moves_there_without_history(store: Store) -> None:
    harvest(store, people(5), scope="donghu")
    run = harvest(store, people(5), scope="xiyuan")
    assert (run.new, run.changed, run.unchanged, run.gone) == (0, 0, 5, 0)
    assert changes(store, run.id).empty
    snap = snapshot(store)
    assert set(snap["scope"]) == {"xiyuan"} and set(snap["last_seen_run"]) == {run.id}
    assert harvest(store, people(5), scope="donghu").gone == 0  # nothing left in donghu to miss


def test_a_first_load_after_a_purge_emptied_the_snapshot_still_keeps_the_shrink_guard(store: Store) -> None:
    harvest(store, people(10))
    with store.engine.begin() as conn:  # as if a purge had removed every record
        conn.exec_driver_sql("DELETE FROM snap_residents")
    run_id = begin(store)
    store.stage(run_id, people(3))
    with pytest.raises(PublishRefused, match="只看到 3 条记录，而上次成功的运行看到 10 条"):
        store.publish(run_id)
    assert snapshot(store).empty
    run = harvest(store, [*people(10), *people(2)])  # the general path, duplicates included
    assert (run.seen, run.new) == (10, 10) and len(changes(store, run.id)) == 10


def test_the_publish_leaves_no_temporary_table_on_its_connection(store: Store) -> None:
    harvest(store, people(5))
    harvest(store, people(6))  # a re-harvest: the run's rows go through a keyed temporary table
    with store.engine.connect() as conn:  # the pool's one connection: the one the publishes used
        assert sa.inspect(conn).get_temp_table_names() == []


def test_two_publishes_of_one_dataset_take_turns(store: Store) -> None:
    """A second publish that starts while the first is between its insert and its commit waits for it,
    then sees its rows: the same records, harvested in another community, move there (on PostgreSQL
    its insert would otherwise meet the first one's uncommitted keys and fail)."""
    first, second = begin(store, scope="donghu"), begin(store, scope="xiyuan")
    store.stage(first, people(3))
    store.stage(second, people(3))
    outcome: list[object] = []

    def publish_second() -> None:
        try:
            outcome.append(store.publish(second))
        except sa.exc.DBAPIError as exc:
            outcome.append(exc)

    racer = threading.Thread(target=publish_second)

    def between(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("INSERT INTO snap_residents") and not racer.is_alive() and not outcome:
            racer.start()
            time.sleep(0.3)  # the second publish gets as far as it can before the first commits

    sa.event.listen(store.engine, "after_cursor_execute", between)
    try:
        assert store.publish(first).new == 3
        racer.join(30)
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", between)
    (moved,) = outcome
    assert isinstance(moved, Run) and (moved.new, moved.unchanged) == (0, 3), moved
    assert set(snapshot(store)["scope"]) == {"xiyuan"}


def test_a_postgresql_server_that_refuses_is_one_line_naming_the_fix() -> None:
    with pytest.raises(StoreUnavailable, match=r"无法连接数据库 .*检查 HARVEST_DATABASE_URL") as refused:
        Store(make_engine(f"postgresql://harvest:s3cret-pw@127.0.0.1:{free_port()}/harvest"))
    assert "s3cret-pw" not in str(refused.value) and "\n" not in str(refused.value)


def test_postgresql_without_psycopg_says_what_to_install() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['psycopg'] = None\n"  # as if the extra were not installed
            "from store import make_engine\n"
            "make_engine('postgresql://harvest@127.0.0.1/harvest')",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "StoreUnavailable" in child.stderr
    assert "pip install 'gridharvest[postgresql]'" in child.stderr.splitlines()[-1]


def test_stores_opening_a_new_database_at_once_all_start(database_url: str) -> None:
    """A pool of workers starting on a new database: each creates the tables and the dataset's info."""

    class Plain(Record):  # no searched field: the search index's own start is tested with it
        id_number: str = Field(key=True)
        name: str = ""

    start, failures = threading.Barrier(6), []

    def open_store() -> None:
        start.wait()
        try:
            Store(make_engine(database_url)).dataset("residents", Plain)
        except sa.exc.DBAPIError as exc:
            failures.append(exc)

    openers = [threading.Thread(target=open_store) for _ in range(6)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(60)
    assert failures == []


def test_first_harvests_on_a_new_database_at_once_all_publish_and_are_found(database_url: str) -> None:
    """Each first publish makes the dataset's search index (on PostgreSQL a function, a table and a GIN
    index) if another has not: a process that looked before another made them must still find them."""
    start, failures = threading.Barrier(4), []

    def first_harvest(n: int) -> None:
        store = Store(make_engine(database_url))
        start.wait()
        try:
            harvest(store, people(25, start=100 * n, address=f"东湖花园{n}栋"), scope=f"c{n}")
        except sa.exc.DBAPIError as exc:
            failures.append(exc)
        finally:
            store.engine.dispose()

    workers = [threading.Thread(target=first_harvest, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert failures == []
    found = Snapshot(make_engine(database_url)).query("residents", search="花园3栋")
    assert len(found) == 25
