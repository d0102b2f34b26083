"""Search is not an oracle: under a masked access an ID or phone number matches only whole or by the
digits its mask shows, every search for a number is audited with the number masked, and the desk
limits how many of them a staff member makes.

The store is asked directly (what the CLI's ``query`` does), on SQLite and on PostgreSQL, and the desk
is driven over HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli import app as harvest
from desk._pages import NUMBER_SEARCHES
from sandbox import World
from settings import load_settings
from store import REF_COLUMN, Access, Snapshot, make_engine
from tests.conftest import DATABASES
from tests.desk_helpers import PASSWORD, seed_snapshot, seeded_desk

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PERSON_LINK = re.compile(r'href="/person/([\w-]+)"')
REVEAL = Access(actor="核查员", reveal=True, reason="核对身份")


@pytest.fixture(scope="module")
def app(world: World, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("oracle")
    desk = seeded_desk(world, data)
    for name in ("clerk", "prober", "auditor"):
        desk.state.desk.staff.add(name, PASSWORD, role="staff", scope="donghu")
    desk.state.desk.staff.add("chief", PASSWORD, role="admin", scope=None)
    return desk


@pytest.fixture
def snapshot(app: FastAPI) -> Snapshot:
    return app.state.desk.snapshot


@pytest.fixture(scope="module", params=DATABASES)
def stored(
    request: pytest.FixtureRequest, app: FastAPI, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Snapshot]:
    """The desk's own snapshot (SQLite), or the same world seeded into a PostgreSQL database."""
    if request.param == "sqlite":
        yield app.state.desk.snapshot
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    store = seed_snapshot(load_settings(data_dir=tmp_path_factory.mktemp("pg"), database_url=url), world)
    yield Snapshot(store.engine)
    store.engine.dispose()
    server.drop_database(url)


@pytest.fixture
def someone(world: World) -> pd.Series:
    return world.persons[world.persons["community"] == "donghu"].iloc[3]


def _searches(snapshot: Snapshot, actor: str) -> list[dict[str, object]]:
    entries, _ = snapshot.audits(limit=1000, actor=actor, action="search")
    return [json.loads(entry.detail or "{}") | {"rows": entry.rows} for entry in entries]


def _found(snapshot: Snapshot, text: str, access: Access) -> set[str]:
    return set(snapshot.query("persons", search=text, refs=True, access=access)[REF_COLUMN])


def test_a_digit_by_digit_probe_learns_nothing_under_a_masked_access(stored: Snapshot, someone) -> None:
    snapshot = stored
    number = someone["id_number"]
    masked = Access(actor="探测者")
    for length in range(7, 18):
        right = number[:length]
        wrong = right[:-1] + str((int(right[-1]) + 1) % 10)
        # Right or wrong, the answer is the same: nothing, so it tells no digit.
        assert _found(snapshot, right, masked) == _found(snapshot, wrong, masked) == set(), length
        assert snapshot.count("persons", search=right, access=masked) == 0
    for hidden in (number[6:14], number[8:12], number[6:10] + number[10:12]):
        assert _found(snapshot, hidden, masked) == set()
    assert number not in _found(snapshot, someone["phone"][2:9], masked)  # the phone's hidden middle
    # What staff are given still finds: the whole number, and what the mask shows.
    phone = someone["phone"]
    assert _found(snapshot, number, masked) == {number}
    assert _found(snapshot, number.lower(), masked) == {number}  # a small x, as typed
    assert number in _found(snapshot, phone, masked)
    assert number in _found(snapshot, number[:6], masked)  # the region code, shown on every page
    assert number in _found(snapshot, number[-4:], masked)
    assert number in _found(snapshot, phone[-4:], masked)
    assert number in _found(snapshot, someone["name"], masked)


def test_hidden_digits_are_searched_only_with_a_reason(stored: Snapshot, world: World, someone) -> None:
    """By the index and, for one character, by the scan instead: the same rule on both."""
    snapshot = stored
    number = someone["id_number"]
    people = world.persons
    for text in (number[6:14], number[:10], someone["phone"][3:9]):
        holders = people[people["id_number"].str.contains(text) | people["phone"].str.contains(text)]
        assert _found(snapshot, text, REVEAL) == set(holders["id_number"]), text
        assert number not in _found(snapshot, text, Access(actor="探测者"))
    people = world.persons
    for digit in "0123456789":
        shown = people["id_number"].str[:6] + people["id_number"].str[14:] + people["phone"].str[:3]
        shown += people["phone"].str[7:] + people["name"] + people["address"]
        hidden_only = people[~shown.str.contains(digit) & people["id_number"].str[6:14].str.contains(digit)]
        if len(hidden_only):
            break
    assert len(hidden_only), "the world has someone whose digit is only in the hidden middle"
    target = hidden_only.iloc[0]["id_number"]
    assert target not in _found(snapshot, digit, Access(actor="探测者"))
    assert target in _found(snapshot, digit, REVEAL)


def test_each_search_for_a_number_writes_one_masked_audit_entry(stored: Snapshot, someone) -> None:
    snapshot = stored
    number, phone = someone["id_number"], someone["phone"]
    actor = Access(actor="审计对象")
    before = len(_searches(snapshot, "审计对象"))
    found = snapshot.search(number, scope="donghu", access=actor)  # every dataset, one search box
    assert len(found["persons"]) == 1
    snapshot.query("persons", search=phone, access=actor)
    snapshot.query("persons", search=number[6:14], access=actor)
    snapshot.query("persons", search=someone["name"], access=actor)  # a name is no number: not audited
    entries = _searches(snapshot, "审计对象")
    assert len(entries) - before == 3
    fragment, by_phone, whole = (str(entry["search"]) for entry in entries[:3])  # newest first
    assert whole == number[:6] + "********" + number[-4:] and by_phone == phone[:3] + "****" + phone[-4:]
    assert "*" in fragment and entries[2]["rows"] == 1
    for entry in entries[:3]:
        text = json.dumps(entry, ensure_ascii=False)
        assert number not in text and phone not in text and number[6:14] not in text
    revealed = Access(actor="审计对象", reveal=True, reason="核对身份")
    snapshot.query("persons", search=number, access=revealed)
    entries, _ = snapshot.audits(limit=1, actor="审计对象", action="reveal")
    assert number not in (entries[0].detail or "") and entries[0].reason == "核对身份"


def _client(app: FastAPI, name: str) -> TestClient:
    browser = TestClient(app, follow_redirects=False)
    form = browser.get("/login")
    answer = browser.post(
        "/login", data={"name": name, "password": PASSWORD, "csrf": CSRF.findall(form.text)[0]}
    )
    assert answer.status_code == 303, answer.text
    return browser


def test_the_desks_search_box_is_no_oracle(app: FastAPI, snapshot: Snapshot, someone) -> None:
    clerk = _client(app, "clerk")
    number = someone["id_number"]
    for length in (8, 12, 14, 16, 17):
        page = clerk.get("/", params={"q": number[:length]})
        assert page.status_code == 200 and not PERSON_LINK.search(page.text), length
    page = clerk.get("/", params={"q": number[6:14]})
    assert not PERSON_LINK.search(page.text)
    whole = clerk.get("/", params={"q": number})
    assert len(set(PERSON_LINK.findall(whole.text))) == 1
    assert whole.text.count(number) == 1  # only in the search box, as typed
    # On a dataset page too, and the count says nothing either.
    listing = clerk.get("/datasets/persons", params={"q": number[6:14]})
    assert "共 0 条" in listing.text
    revealed = clerk.post(
        f"/datasets/persons?q={number[6:14]}",
        data={"csrf": CSRF.findall(listing.text)[0], "reason": "核对身份"},
    )
    assert revealed.status_code == 303  # to the same page, revealed under a grant (desk._grants)
    revealed = clerk.get(revealed.headers["location"])
    assert revealed.status_code == 200 and number in revealed.text
    entries = _searches(snapshot, "clerk")
    assert len(entries) == 8  # the eight masked searches for a number; the reveal is an entry of its own
    assert not any(number[6:14] in json.dumps(entry) for entry in entries)


def test_the_desk_limits_searches_for_numbers(app: FastAPI, world: World) -> None:
    prober = _client(app, "prober")
    people = world.persons[world.persons["community"] == "donghu"]
    for number in people["id_number"].head(NUMBER_SEARCHES):
        assert prober.get("/", params={"q": number}).status_code == 200
    refused = prober.get("/", params={"q": people["id_number"].iloc[NUMBER_SEARCHES]})
    assert refused.status_code == 429
    assert "按号码检索过于频繁" in refused.text and "显示完整信息" in refused.text
    assert prober.get("/datasets/persons", params={"q": "13800138000"}).status_code == 429
    # Names are no numbers: still answered; and the limit is one user's, not everyone's.
    assert prober.get("/", params={"q": people["name"].iloc[0]}).status_code == 200
    assert _client(app, "auditor").get("/", params={"q": people["id_number"].iloc[0]}).status_code == 200


def test_the_cli_searches_by_the_same_rule(world: World) -> None:
    seed_snapshot(load_settings(), world)  # the test's own data dir
    someone = world.persons.iloc[5]
    number = someone["id_number"]
    runner = CliRunner(env={"COLUMNS": "250"})
    probe = runner.invoke(harvest, ["query", "persons", "--search", number[6:14], "--as", "操作员"])
    assert probe.exit_code == 0 and "共 0 条" in probe.output, probe.output
    whole = runner.invoke(harvest, ["query", "persons", "--search", number, "--as", "操作员"])
    assert whole.exit_code == 0 and number[:6] + "********" + number[-4:] in whole.output
    revealed = runner.invoke(
        harvest, ["query", "persons", "--search", number[6:14], "--reveal", "--reason", "核对户籍"]
    )
    assert revealed.exit_code == 0 and number in revealed.output
    audited = Snapshot(make_engine(load_settings().resolved_database_url)).audits(
        actor="操作员", action="search"
    )
    assert audited[1] == 2
