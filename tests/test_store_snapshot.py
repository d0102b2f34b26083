"""Reading the snapshot: masking by default, audited reveals and exports, person and household views."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from sandbox import World
from store import Access, Field, Record, RevealRefused, Snapshot, Store, UnknownDataset, make_engine
from tests.store_helpers import harvest


class Person(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    phone: str = Field(role="phone", title="手机号")
    address: str = Field(role="address", title="住址")
    household_no: str = Field(role="household", title="户号")


class Elderly(Record):
    archive_no: str = Field(key=True, title="档案编号")
    id_number: str = Field(role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    service_type: str = Field(title="服务类型")


def harvested(url: str, world: World) -> Snapshot:
    engine = make_engine(url)
    store = Store(engine)
    for dataset, model, frame in (("persons", Person, world.persons), ("elderly", Elderly, world.elderly)):
        for scope, rows in frame.groupby("community"):
            harvest(store, rows.to_dict(orient="records"), model=model, dataset=dataset, scope=scope)
    return Snapshot(engine)


@pytest.fixture
def snapshot(database_url: str, world: World) -> Snapshot:
    return harvested(database_url, world)


@pytest.fixture
def sqlite_snapshot(tmp_path: Path, world: World) -> Snapshot:
    """For the tests that read SQLite's query plans."""
    return harvested(f"sqlite:///{tmp_path / 'harvest.db'}", world)


def audit_rows(snapshot: Snapshot) -> pd.DataFrame:
    with snapshot.engine.connect() as conn:
        return pd.read_sql("SELECT * FROM audit ORDER BY id", conn)


def test_queries_are_masked_by_default(snapshot: Snapshot, world: World) -> None:
    frame = snapshot.query("persons")
    assert len(frame) == len(world.persons)
    truth = world.persons.set_index("id_number")
    assert not frame["id_number"].isin(truth.index).any()
    assert frame["id_number"].str.fullmatch(r"\d{6}\*{8}[\dX]{4}").all()
    assert not frame["phone"].isin(truth["phone"][truth["phone"] != ""]).any()
    assert audit_rows(snapshot).empty  # masked reads are not reveals


def test_a_reveal_needs_a_reason_and_is_audited(snapshot: Snapshot, world: World) -> None:
    with pytest.raises(RevealRefused, match="理由"):
        snapshot.query("persons", access=Access(actor="王五", reveal=True))
    someone = world.persons.iloc[3]
    frame = snapshot.query(
        "persons",
        where={"id_number": someone["id_number"]},
        access=Access(actor="王五", reveal=True, reason="入户核查"),
    )
    assert frame.iloc[0]["name"] == someone["name"] and frame.iloc[0]["phone"] == someone["phone"]
    audit = audit_rows(snapshot).iloc[-1]
    assert (audit["actor"], audit["action"], audit["reason"], audit["rows"]) == (
        "王五",
        "reveal",
        "入户核查",
        1,
    )


def test_person_joins_population_and_civil_affairs_by_id_number(snapshot: Snapshot, world: World) -> None:
    elder = world.elderly.iloc[0]
    typed = elder["id_number"].lower().replace("0", "０")  # as a clerk might type it
    found = snapshot.person(typed, access=Access(reveal=True, reason="一人一档核对"))
    assert set(found) == {"persons", "elderly"}
    assert list(found["elderly"]["archive_no"]) == list(
        world.elderly.loc[world.elderly["id_number"] == elder["id_number"], "archive_no"]
    )
    assert found["persons"].iloc[0]["name"] == elder["name"]


def test_household_lists_everyone_at_one_flat(snapshot: Snapshot, world: World) -> None:
    home = world.households.sort_values("size").iloc[-1]
    members = snapshot.household(home["household_no"])
    assert len(members) == home["size"] == (world.persons["household_no"] == home["household_no"]).sum()
    assert members["name"].str.contains(r"\*").all()


@pytest.mark.parametrize("probe", ["name", "id_fragment", "phone", "address"])
def test_search_finds_names_id_fragments_phones_and_addresses(
    snapshot: Snapshot, world: World, probe: str
) -> None:
    people = world.persons
    two_char = people.loc[people["name"].str.len() == 2, "name"].iloc[0]
    text = {
        "name": two_char,
        "id_fragment": people["id_number"].iloc[5][6:14],
        "phone": people["phone"].iloc[0][-6:],
        "address": people["address"].iloc[7][:6],
    }[probe]
    found = snapshot.query("persons", search=text, access=Access(reveal=True, reason="测试检索"))
    searched = people[["name", "id_number", "phone", "address"]].apply(
        lambda c: c.str.contains(text, regex=False)
    )
    assert sorted(found["id_number"]) == sorted(people.loc[searched.any(axis=1), "id_number"])
    assert len(found) > 0


def test_scope_limits_a_query_to_one_community(snapshot: Snapshot, world: World) -> None:
    frame = snapshot.query("persons", scope="donghu")
    assert len(frame) == (world.persons["community"] == "donghu").sum() and set(frame["scope"]) == {"donghu"}


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_export_is_masked_has_chinese_headers_and_is_audited(
    snapshot: Snapshot, tmp_path: Path, suffix: str
) -> None:
    frame = snapshot.query("persons", scope="donghu")
    path = snapshot.export(frame, tmp_path / f"居民{suffix}", dataset="persons", access=Access(actor="李四"))
    read = pd.read_excel(path, skiprows=3, dtype=str) if suffix == ".xlsx" else pd.read_csv(path, dtype=str)
    assert list(read.columns[:6]) == ["身份证号", "姓名", "年龄", "手机号", "住址", "户号"]
    assert len(read) == len(frame) and read["身份证号"].str.contains(r"\*{8}").all()
    if suffix == ".xlsx":  # a .csv is data only, header first
        assert "数据更新于" in pd.read_excel(path, header=None, nrows=1).iloc[0, 0]
    audit = audit_rows(snapshot).iloc[-1]
    assert (audit["action"], audit["actor"], audit["rows"]) == ("export", "李四", len(frame))
    assert json.loads(audit["detail"])["revealed"] is False


def test_an_invalid_id_number_is_kept_but_flagged(database_url: str) -> None:
    store = Store(make_engine(database_url))
    run = store.begin_run(robot="p", dataset="persons", model=Person, system="s", account="a", scope="c")
    good = "11010519491231002X"
    store.stage(
        run,
        [
            {
                "id_number": "11010519491231002x",
                "name": "甲",
                "phone": "1",
                "address": "a",
                "household_no": "1",
            },
            {
                "id_number": "110105194912310021",
                "name": "乙",
                "phone": "2",
                "address": "b",
                "household_no": "1",
            },
        ],
    )
    store.publish(run)
    frame = Snapshot(store.engine).query("persons", access=Access(reveal=True, reason="核对"))
    flags = dict(zip(frame["id_number"], frame["flags"], strict=True))
    assert pd.isna(flags[good]) and flags["110105194912310021"] == "invalid_id_number:id_number"
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM snap_persons")) == 2


class Tagged(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    tags: str = Field(role="tags", title="标签")
    grid: str = Field(role="grid", title="网格")


def test_filters_by_part_of_a_field_count_and_pages_agree(database_url: str, world: World) -> None:
    store = Store(make_engine(database_url))
    people = world.persons[world.persons["community"] == "donghu"]
    harvest(store, people.to_dict(orient="records"), model=Tagged, dataset="tagged", scope="donghu")
    snapshot = Snapshot(store.engine)
    alone = people[people["tags"].str.contains("独居老人") & (people["grid"] == "第1网格")]
    filters = {"where": {"grid": "第1网格"}, "contains": {"tags": "独居老人"}, "scope": "donghu"}
    assert snapshot.count("tagged", **filters) == len(alone) > 2
    read = pd.concat(
        snapshot.query("tagged", **filters, limit=2, offset=n, refs=True) for n in range(0, len(alone), 2)
    )
    assert sorted(read["_ref"]) == sorted(alone["id_number"])  # each row once, refs unmasked
    assert read["id_number"].str.contains(r"\*{8}").all()
    assert snapshot.count("tagged", contains={"tags": "%"}) == 0  # LIKE wildcards are literal
    assert set(snapshot.distinct("tagged", "grid")) == set(people["grid"])
    with pytest.raises(RevealRefused):
        snapshot.distinct("tagged", "name")
    with pytest.raises(KeyError, match="没有字段"):
        snapshot.count("tagged", contains={"nope": "x"})


def test_a_part_of_a_field_matches_as_sqlites_like_does_on_every_database(database_url: str) -> None:
    """ASCII letters in either case, no other letter folded, wildcards literal: what SQLite always did."""
    store = Store(make_engine(database_url))
    tags = ["VIP,低保", "Ärzte", "50%_off", "ｖｉｐ"]
    rows = [{"id_number": f"ID{i}", "name": "甲", "tags": tag, "grid": "1"} for i, tag in enumerate(tags)]
    harvest(store, rows, model=Tagged, dataset="tagged")
    snapshot = Snapshot(store.engine)
    found = {part: snapshot.count("tagged", contains={"tags": part}) for part in ("vIp", "ärz", "%_", "0_")}
    assert found == {"vIp": 1, "ärz": 0, "%_": 1, "0_": 0}


def test_a_masked_search_folds_ascii_letters_as_an_unmasked_one_on_every_database(database_url: str) -> None:
    """Under a masked access the searched text is matched again as staff see the record; that second
    match must fold as the index does, or PostgreSQL's case-sensitive LIKE drops what SQLite finds."""
    store = Store(make_engine(database_url))
    addresses = ["B座 Room 7", "b座 room 8", "Ä座"]
    rows = [
        {"id_number": f"33010219800101{i:03d}X", "name": "甲", "address": address}
        for i, address in enumerate(addresses)
    ]
    harvest(store, rows)
    snapshot = Snapshot(store.engine)
    admin = Access(actor="管理员", reveal=True, reason="核对")
    for text, count in (("b座", 2), ("ROOM", 2), ("ä座", 0)):
        masked = snapshot.query("residents", search=text)
        assert len(masked) == len(snapshot.query("residents", search=text, access=admin)) == count, text


def test_history_of_one_person_is_masked_scoped_and_audited_when_revealed(
    snapshot: Snapshot, world: World
) -> None:
    store = Store(snapshot.engine)
    people = world.persons[world.persons["community"] == "donghu"].copy()
    target = people.iloc[3]
    people.loc[people["id_number"] == target["id_number"], "phone"] = "13800001111"
    harvest(store, people.to_dict(orient="records"), model=Person, dataset="persons", scope="donghu")

    history = snapshot.history(target["id_number"])
    changed = history[history["kind"] == "changed"]
    assert list(changed["field"]) == ["手机号"] and list(changed["after"]) == ["138****1111"]
    assert {"new"} <= set(history["kind"]) and history["at"].is_monotonic_decreasing
    assert snapshot.history(target["id_number"], scope="xiyuan").empty

    revealed = snapshot.history(target["id_number"], access=Access(actor="王五", reveal=True, reason="核对"))
    assert "13800001111" in set(revealed["after"])
    entries, total = snapshot.audits(actor="王五")
    assert total == 1 and entries[0].action == "reveal" and entries[0].reason == "核对"


def plans(snapshot: Snapshot, action: Callable[[], object], marker: str) -> list[str]:
    """SQLite's query plans of the statements ``action`` runs that contain ``marker``."""
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if marker in statement:
            statements.append((statement, parameters))

    sa.event.listen(snapshot.engine, "before_cursor_execute", keep)
    try:
        action()
    finally:
        sa.event.remove(snapshot.engine, "before_cursor_execute", keep)
    with snapshot.engine.connect() as conn:
        return [
            " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            for statement, parameters in statements
        ]


def test_a_scoped_search_is_driven_by_the_search_index(sqlite_snapshot: Snapshot, world: World) -> None:
    """The plan, not a stopwatch: SQLite must start from the search index, not walk a community."""
    snapshot = sqlite_snapshot
    name = world.persons.loc[world.persons["name"].str.len() == 2, "name"].iloc[0]
    (plan, *_) = plans(snapshot, lambda: snapshot.query("persons", search=name, scope="donghu"), "MATCH")
    assert "ix_snap_persons_scope" not in plan, plan


def test_person_and_household_views_look_records_up_by_index(sqlite_snapshot: Snapshot, world: World) -> None:
    snapshot = sqlite_snapshot
    elder = world.elderly.iloc[0]
    person = plans(snapshot, lambda: snapshot.person(elder["id_number"]), "FROM snap_elderly")
    assert person and all("lookup_elderly_id_number" in plan for plan in person), person
    history = plans(snapshot, lambda: snapshot.history(elder["id_number"]), "FROM change")
    assert history and all("ix_change_key" in plan for plan in history), history
    number = world.persons["household_no"].iloc[0]
    home = plans(snapshot, lambda: snapshot.household(number), "FROM snap_persons")
    assert home and all("lookup_persons_household_no" in plan for plan in home), home


def test_a_snapshot_made_before_the_lookup_indexes_gets_them(snapshot: Snapshot) -> None:
    with snapshot.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX lookup_elderly_id_number")
    Store(snapshot.engine).dataset("elderly", Elderly)
    indexes = sa.inspect(snapshot.engine).get_indexes("snap_elderly")
    assert "lookup_elderly_id_number" in {index["name"] for index in indexes}


def test_absent_from_finds_people_without_a_record_elsewhere(snapshot: Snapshot, world: World) -> None:
    people, elderly = world.persons, world.elderly
    mine = set(people.loc[people["community"] == "donghu", "id_number"])
    cared = set(elderly.loc[elderly["community"] == "donghu", "id_number"])
    assert cared and cared < mine  # both kinds exist, so the filter is tested
    filters = {"scope": "donghu", "absent_from": "elderly"}
    found = snapshot.query("persons", **filters, refs=True)
    assert set(found["_ref"]) == mine - cared
    assert snapshot.count("persons", **filters) == len(mine - cared)
    assert snapshot.count("persons", absent_from="elderly") == len(people) - len(elderly)
    with pytest.raises(UnknownDataset):
        snapshot.count("persons", absent_from="nothing_like_it")
