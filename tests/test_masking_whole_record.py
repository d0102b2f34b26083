"""Masking as a whole record: no masked view of any sandbox dataset lets a full ID number (its eight
birth-date digits, however written) or a full address (unit and room) be put back together.

The snapshot holds every dataset of every sandbox system, staged through the demo robots' own record
classes as a harvest stages them, then harvested again with corrections, so that the history has
birth dates and rooms in it too. Every masked way out is read: ``Snapshot.query``, ``person``,
``household``, ``history`` and the desk's pages over HTTP.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from desk import create_app
from robots.runtime import discover
from sandbox import SPECS, World
from settings import load_settings
from store import REF_COLUMN, Record, Snapshot, Store, make_engine, record_spec
from tests.desk_helpers import PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PERSON_LINK = re.compile(r'href="/person/([\w-]+)"')
TAGS = re.compile(r"<[^>]+>")
# Every dataset of the sandbox's demo robots: each must be in the snapshot the tests read.
DATASETS = ("persons", "households", "family_doctor", "disability", "assistance", "elderly", "entities")
SAMPLE = 40  # persons and households whose one-person and household views are read one by one


@dataclass(frozen=True)
class Truth:
    """What the masks hide, per person: from the world itself, not from anything the store says."""

    births: dict[str, str]  # ID number -> YYYYMMDD
    flats: dict[str, tuple[str, str]]  # household number -> (unit, room)
    home_of: dict[str, str]  # ID number -> household number


def _staged(frame: pd.DataFrame, model: type[Record]) -> list[dict[str, object]]:
    """The sandbox's clean rows as the robot's cells would arrive: text fields as text."""
    text = [c.name for c in record_spec(model).columns if c.type is str and c.name in frame]
    return (
        frame.astype({name: object for name in text})
        .assign(
            **{
                name: frame[name].map(lambda v: v if v is None or isinstance(v, str) else str(v))
                for name in text
            }
        )
        .to_dict(orient="records")
    )


def _publish(store: Store, dataset: str, model: type[Record], frame: pd.DataFrame) -> None:
    for scope, rows in frame.groupby("community"):
        run = store.begin_run(
            robot=dataset,
            dataset=dataset,
            model=model,
            system="sandbox",
            account=str(scope),
            scope=str(scope),
        )
        store.stage(run, _staged(rows, model))
        store.publish(run)


def _corrected(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A second harvest in which some birth dates and rooms were corrected: history to read."""
    out = frame.copy()
    some = out.index[::7]
    if "birth_date" in out:
        out.loc[some, "birth_date"] = (
            pd.to_datetime(out.loc[some, "birth_date"]) + pd.Timedelta(days=1)
        ).dt.strftime("%Y-%m-%d")
    if dataset == "households":
        out.loc[some, "room"] = out.loc[some, "room"].astype(str) + "0"
    return out


@pytest.fixture(scope="module")
def harvested(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, Truth]]:
    data = tmp_path_factory.mktemp("whole-record")
    settings = load_settings(data_dir=data, database_url=f"sqlite:///{data / 'harvest.db'}")
    store = Store(make_engine(settings.resolved_database_url))
    models = {
        spec.dataset: spec.record for spec in discover().values() if spec.module.startswith("robots.sandbox_")
    }
    frames = {}
    for system in SPECS:
        for dataset in system.datasets:
            frames[dataset.name] = dataset.frame(world)
            _publish(store, dataset.name, models[dataset.name], frames[dataset.name])
    assert set(frames) == set(models), "every sandbox dataset has a demo robot"
    for name, frame in frames.items():
        _publish(store, name, models[name], _corrected(name, frame))

    households = world.households
    flats = {
        str(h): (str(u), str(r))
        for h, u, r in zip(households["household_no"], households["unit"], households["room"], strict=True)
    }
    flats |= {h: (u, r + "0") for h, (u, r) in list(flats.items())}  # the corrected rooms as well
    home_of = dict(zip(world.persons["id_number"], world.persons["household_no"], strict=True))
    app = create_app(settings)
    app.state.desk.staff.add("chief", PASSWORD, role="admin", scope=None)
    yield app, Truth({n: n[6:14] for n in world.persons["id_number"]}, flats, home_of)


def _dates_in(text: str) -> set[str]:
    """Every date ``text`` spells, whatever the separators: any 8 digits in a row, and a four-digit year
    followed by two short numbers (1938-5-22, 1938年5月22日, 1938/05/22)."""
    groups = re.findall(r"\d+", text)
    found = {run[i : i + 8] for run in groups for i in range(len(run) - 7)}
    for year, month, day in zip(groups, groups[1:], groups[2:], strict=False):
        if len(year) == 4 and len(month) <= 2 and len(day) <= 2:
            found.add(f"{year}{int(month):02d}{int(day):02d}")
    return found


def _assert_nothing_rebuilt(
    text: str, id_numbers: Iterable[str], households: Iterable[str], truth: Truth
) -> None:
    """Neither the full ID number nor its birth date, nor a household's unit with its room, is in ``text``."""
    dates = _dates_in(text)
    cells = set(re.split(r"\s*\|\s*|\s{2,}|\n", text))
    for number in id_numbers:
        assert number not in text
        assert truth.births[number] not in dates, (number, text)
    for household in households:
        unit, room = truth.flats[household]
        assert f"{room}室" not in text and f"{unit}单元" not in text, (household, text)
        assert not {unit, room} <= cells, (household, text)
        assert room not in cells, (household, text)


def _persons_of(row: dict[str, object], truth: Truth) -> tuple[list[str], list[str]]:
    """Whose record a row is (from the unmasked link column), and their household."""
    ref = row.get(REF_COLUMN)
    numbers = [ref] if isinstance(ref, str) and ref in truth.births else []
    homes = [truth.home_of[n] for n in numbers]
    household = row.get("household_no")
    if isinstance(household, str) and household in truth.flats:
        homes.append(household)
    return numbers, homes


def _row_text(row: dict[str, object]) -> str:
    return " | ".join(str(v) for k, v in row.items() if k != REF_COLUMN)


def test_no_masked_query_of_any_dataset_gives_an_id_number_or_an_address_back(harvested) -> None:
    app, truth = harvested
    snapshot: Snapshot = app.state.desk.snapshot
    datasets = [info.name for info in snapshot.datasets()]
    assert set(DATASETS) <= set(datasets)
    for dataset in datasets:
        frame = snapshot.query(dataset, refs=True, include_gone=True)
        assert len(frame), dataset
        for row in frame.to_dict(orient="records"):
            numbers, homes = _persons_of(row, truth)
            _assert_nothing_rebuilt(_row_text(row), numbers, homes, truth)


def test_no_persons_records_history_or_household_gives_them_back(harvested, world: World) -> None:
    app, truth = harvested
    snapshot: Snapshot = app.state.desk.snapshot
    # The disabled, the signed and the operators first: their records are in the most datasets.
    people = pd.concat([world.persons[world.persons["tags"].str.contains("残疾")], world.persons])
    for number in people["id_number"].drop_duplicates().head(SAMPLE):
        found = snapshot.person(number)
        history = snapshot.history(number)
        assert found and len(history), number
        # One person's page: every record of theirs and their history read together.
        text = "\n".join(
            _row_text(row) for frame in found.values() for row in frame.to_dict(orient="records")
        )
        text += "\n" + "\n".join(_row_text(row) for row in history.to_dict(orient="records"))
        _assert_nothing_rebuilt(text, [number], [truth.home_of[number]], truth)
    for household in world.households["household_no"].head(SAMPLE):
        frame = snapshot.household(household)
        members = world.persons.loc[world.persons["household_no"] == household, "id_number"]
        text = "\n".join(_row_text(row) for row in frame.to_dict(orient="records"))
        _assert_nothing_rebuilt(text, members, [household], truth)


def _client(app: FastAPI) -> TestClient:
    browser = TestClient(app, follow_redirects=False)
    form = browser.get("/login")
    csrf = CSRF.findall(form.text)[0]
    assert (
        browser.post("/login", data={"name": "chief", "password": PASSWORD, "csrf": csrf}).status_code == 303
    )
    return browser


def _visible(page: str) -> str:
    """A page's text as staff read it, each element on its own line."""
    return html.unescape(TAGS.sub("\n", page))


def test_no_desk_page_gives_them_back(harvested, world: World) -> None:
    app, truth = harvested
    browser = _client(app)
    everyone = list(world.persons["id_number"])
    for dataset in DATASETS:
        page = browser.get(f"/datasets/{dataset}")
        assert page.status_code == 200, dataset
        for row in page.text.split("<tr")[2:]:  # one record a row
            numbers = [n for n in everyone if n[:6] in row and n[-4:] in row]
            homes = [h for h in truth.flats if f">{h}<" in row]
            text = "  ".join(TAGS.sub("  ", row).split("  "))
            _assert_nothing_rebuilt(html.unescape(text), numbers, homes, truth)
    disabled = world.persons[world.persons["tags"].str.contains("残疾")]
    people = pd.concat([disabled, world.persons]).drop_duplicates("id_number").head(SAMPLE)
    for person in people.itertuples():
        found = browser.get("/", params={"q": person.id_number}).text  # a whole ID number finds its person
        token = PERSON_LINK.findall(found)[0]
        page = browser.get(f"/person/{token}")
        assert page.status_code == 200
        _assert_nothing_rebuilt(_visible(page.text), [person.id_number], [person.household_no], truth)
        household = browser.get(f"/household/{person.household_no}").text
        members = world.persons.loc[world.persons["household_no"] == person.household_no, "id_number"]
        _assert_nothing_rebuilt(_visible(household), members, [person.household_no], truth)
        by_name = browser.get("/", params={"q": person.name}).text
        namesakes = world.persons.loc[world.persons["name"] == person.name, "id_number"]
        _assert_nothing_rebuilt(_visible(by_name), namesakes, [], truth)
    audit = _visible(browser.get("/audit").text)
    _assert_nothing_rebuilt(audit, people["id_number"], [], truth)  # what was searched, masked
