"""Grids, ages and community names: persons take their household's grid, every filter a page lacks is
refused, and staff see their community by name."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from cli import app as harvest
from desk import create_app
from sandbox import World
from settings import load_settings
from store import AGE_COLUMN, GRID_COLUMN, Snapshot, selection_words
from tests.desk_helpers import PASSWORD, seeded_desk
from tests.test_desk_http import client

NAMES = {"donghu": "东湖社区", "xiyuan": "西苑社区"}


@pytest.fixture(scope="module")
def app(world: World, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("desk-grids")
    seeded = seeded_desk(world, data)
    settings = seeded.state.desk.settings.model_copy(update={"communities": NAMES})
    desk = create_app(settings)
    desk.state.desk.staff.add("clerk", PASSWORD, role="staff", scope="donghu")
    desk.state.desk.staff.add("lost", PASSWORD, role="staff", scope="东湖")  # as typed before the check
    return desk


def _count(page: str) -> int:
    found = re.search(r"共 (\d+) 条", page)
    assert found, page[:2000]
    return int(found[1])


def test_persons_take_their_households_grid_and_age(app: FastAPI, world: World) -> None:
    snapshot: Snapshot = app.state.desk.snapshot
    people = world.persons[world.persons["community"] == "donghu"]
    for grid, members in people.groupby("grid"):
        assert snapshot.count("persons", where={GRID_COLUMN: grid}, scope="donghu") == len(members)
    assert snapshot.distinct("persons", GRID_COLUMN, scope="donghu") == sorted(people["grid"].unique())
    frame = snapshot.query("persons", scope="donghu", refs=True, limit=200)
    truth = people.set_index("id_number")
    assert list(frame[GRID_COLUMN]) == list(truth.loc[frame["_ref"], "grid"])
    born = truth.loc[frame["_ref"], "birth_date"].map(_year)
    assert list(frame[AGE_COLUMN]) == [_this_year() - year for year in born]
    old = snapshot.count("persons", scope="donghu", ages=(80, None))
    assert old == sum(_this_year() - _year(d) >= 80 for d in people["birth_date"]) > 0


def _year(born: object) -> int:
    return int(str(born)[:4])


def _this_year() -> int:
    return dt.date.today().year


def test_a_grids_list_on_the_desk_and_unknown_filters_refused(app: FastAPI, world: World) -> None:
    browser = client(app)
    people = world.persons
    mine = people[(people["community"] == "donghu") & (people["grid"] == "第2网格")]
    alone = mine[mine["tags"].fillna("").str.contains("独居老人")]
    page = browser.get("/datasets/persons", params={"grid": "第2网格", "tags": "独居老人"}).text
    assert _count(page) == len(alone) > 0
    assert '<option value="第2网格" selected' in page
    aged = browser.get("/datasets/persons", params={"grid": "第2网格", "age_min": "60", "age_max": "79"})
    assert _count(aged.text) == sum(60 <= _this_year() - _year(d) <= 79 for d in mine["birth_date"])
    for params, words in (
        ({"gird": "第2网格"}, ["gird", "网格"]),  # a typo is not the whole community
        ({"community": "xiyuan"}, ["community", "网格"]),  # staff are bound to their own
        ({"absent": "nope"}, ["未登记于"]),
        ({"age_min": "sixty"}, ["年龄起", "整数"]),
    ):
        answer = browser.get("/datasets/persons", params=params)
        assert answer.status_code == 400, params
        assert all(word in answer.text for word in words), (params, answer.text[-800:])
    households = browser.get("/datasets/households", params={"age_min": "60"})
    assert households.status_code == 400 and "年龄" not in _filters_of(households.text)


def _filters_of(page: str) -> str:
    found = re.search(r"可以按(.*?)筛选", page)
    return found[1] if found else ""


def test_communities_show_by_name_and_a_user_of_no_known_community_is_told(app: FastAPI) -> None:
    page = client(app).get("/").text
    assert "clerk（东湖社区）" in page and "donghu" not in page.split("<main>")[0]
    lost = client(app, "lost").get("/").text
    assert "所属社区「东湖」在数据库里没有任何记录" in lost


def test_add_user_takes_a_community_by_name_and_refuses_an_unknown_one(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = app.state.desk.settings
    monkeypatch.setenv("HARVEST_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARVEST_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("HARVEST_COMMUNITIES", '{"donghu": "东湖社区", "xiyuan": "西苑社区"}')
    runner = CliRunner()
    named = runner.invoke(
        harvest,
        ["desk", "add-user", "hu", "--role", "staff", "--scope", "东湖", "--password-stdin"],
        input=f"{PASSWORD}\n",
    )
    assert named.exit_code == 0, named.output
    assert "社区 东湖社区（donghu）" in named.output
    assert app.state.desk.staff.login("hu", PASSWORD, client="t").user.scope == "donghu"
    unknown = runner.invoke(
        harvest,
        ["desk", "add-user", "nan", "--role", "staff", "--scope", "南湖", "--password-stdin"],
        input=f"{PASSWORD}\n",
    )
    assert unknown.exit_code == 2
    assert "没有社区 '南湖'" in unknown.output and "donghu（东湖社区）" in unknown.output
    assert "nan" not in {user.name for user in app.state.desk.staff.users()}
    assert load_settings().communities == NAMES


def test_a_name_search_lists_the_exact_name_first(app: FastAPI, world: World) -> None:
    people = world.persons[world.persons["community"] == "donghu"]
    names = set(people["name"])
    # A name that is also the start of longer names (张英 and 张英佳), as staff meet it.
    short = next(n for n in sorted(names) if len(n) == 2 and any(o != n and o.startswith(n) for o in names))
    snapshot: Snapshot = app.state.desk.snapshot
    hits = snapshot.query("persons", search=short, scope="donghu", refs=True)
    truth = people.set_index("id_number").loc[hits["_ref"], "name"].tolist()
    exact = [n == short for n in truth]
    assert any(exact) and exact == sorted(exact, reverse=True), truth
    started = [n.startswith(short) for n in truth]
    assert started == sorted(started, reverse=True), truth


def test_a_filter_in_words_names_the_age_band_and_the_community() -> None:
    selection = {"where": {GRID_COLUMN: "第2网格"}, "ages": [60, None], "scope": "donghu"}
    words = selection_words(selection, {GRID_COLUMN: "网格"}, {GRID_COLUMN: "grid"}, {}, NAMES)
    assert words == "网格=第2网格；年龄 60 及以上；社区 东湖社区"
    assert "年龄 60-79" in selection_words({"ages": [60, 79]}, {}, {})
