"""The household page (同户) and the .xlsx export as staff read them: real Chromium against the desk
served on 127.0.0.1 over a real SQLite snapshot of the test world."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from desk._views import Member, head_first
from sandbox import World
from settings import load_settings
from store import Field, Record
from store._masking import mask_value
from tests.desk_helpers import PASSWORD, seed_snapshot, served
from tests.test_desk_pages import MINE, Desk, log_in

CONTRACTS = "contracts"  # a second dataset naming the household's members, so they merge across two


class Contract(Record):
    """A family-doctor contract as another system lists it: the person and their household."""

    contract_no: str = Field(key=True, title="签约编号")
    id_number: str = Field(role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    household_no: str = Field(role="household", title="户号")
    community: str = Field(role="community", title="社区")


def a_household(world: World) -> pd.DataFrame:
    """The members of the first household of MINE with at least three."""
    people = world.persons[world.persons["community"] == MINE]
    sizes = people.groupby("household_no")["id_number"].transform("size")
    return people[people["household_no"] == people.loc[sizes >= 3, "household_no"].iloc[0]]


@pytest.fixture(scope="module")
def desk(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    from desk import create_app

    data = tmp_path_factory.mktemp("household")
    settings = load_settings(data_dir=data, database_url=f"sqlite:///{data / 'harvest.db'}")
    store = seed_snapshot(settings, world)
    members = a_household(world)
    run = store.begin_run(
        robot=CONTRACTS, dataset=CONTRACTS, model=Contract, system="health", account=MINE, scope=MINE
    )
    store.stage(
        run,
        [
            {**person[["id_number", "name", "household_no", "community"]], "contract_no": f"QY{n}"}
            for n, (_, person) in enumerate(members.head(2).iterrows())
        ],
    )
    store.publish(run)
    app = create_app(settings)
    app.state.desk.staff.add("donghu_clerk", PASSWORD, role="staff", scope=MINE)
    app.state.desk.staff.add("director", PASSWORD, role="admin", scope=None)
    with served(app) as url:
        yield Desk(url, app.state.desk.settings)


def test_a_household_is_its_address_its_size_and_each_member_once_head_first(
    page: Page, desk: Desk, world: World
) -> None:
    members = a_household(world)
    number = members["household_no"].iloc[0]
    address = world.households.set_index("household_no").loc[number, "address"]
    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/household/{number}")

    expect(page.locator("h1")).to_have_text(str(mask_value("address", address)))
    expect(page.locator("main")).to_contain_text(f"本户共 {len(members)} 人")
    shown = page.locator("ul.members > li")
    expect(shown).to_have_count(len(members))
    expect(page.get_by_role("link", name="查看此人")).to_have_count(len(members))
    ids = shown.locator(".id").all_inner_texts()
    head = members[members["relation"] == "户主"].iloc[0]
    assert ids[0] == mask_value("id_number", head["id_number"])  # the head first
    expected = {
        mask_value("id_number", p["id_number"]): (
            p["relation"],
            dt.date.today().year - int(p["birth_date"][:4]),
        )
        for _, p in members.iterrows()
    }
    contracted = {mask_value("id_number", n) for n in members["id_number"].head(2)}
    assert sorted(ids) == sorted(expected)  # everyone once, though two are in two datasets
    for item, masked_id in zip(shown.all(), ids, strict=True):
        relation, age = expected[masked_id]
        expect(item.locator(".relation")).to_have_text(relation)
        expect(item.locator(".age")).to_have_text(f"{age} 岁")
        expect(item.locator(".src")).to_have_count(2 if masked_id in contracted else 1)  # both datasets named
    expect(page.locator("article.card h3")).to_have_text(["户籍信息"])  # the household's own record below
    expect(page.get_by_role("link", name="同户人员")).to_have_count(0)  # no link to this very page
    content = page.content()
    assert not any(value in content for value in (*members["id_number"], *members["name"]))


def test_the_head_is_the_one_the_household_record_names_when_no_relation_says() -> None:
    def member(name: str, age: str, relation: str = "") -> Member:
        return Member(token=name + age, name=name, age=age, relation=relation)

    young, head, old = member("王*", "9"), member("李**", "40"), member("张*", "70")
    assert head_first([young, head, old], "李**") == [head, old, young]
    twins = [member("王*", "9"), member("王*", "9")]
    assert head_first([*twins, old], "王*") == [old, *twins]  # a masked name naming two names no one
    spouse = member("赵*", "50", "配偶")
    assert head_first([spouse, member("钱*", "30", "本人")], "赵*")[0].relation == "本人"


def test_an_export_says_what_made_it_and_reads_as_a_table(
    page: Page, browser: Browser, desk: Desk, world: World
) -> None:
    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/datasets/persons?tags=独居老人&absent=elderly")
    with page.expect_download() as download:
        page.get_by_role("button", name="导出 Excel（脱敏）").click()
    name = download.value.suggested_filename
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    assert name == f"人口信息-{today:%Y%m%d}.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    assert sheet is not None and sheet.title == "人口信息"
    notes = [sheet.cell(row=r, column=1).value for r in (1, 2, 3)]
    assert str(notes[0]).startswith("数据更新于 ")
    assert notes[1] == f"筛选条件：标签含 独居老人；未登记于 养老服务；社区 {MINE}"
    assert str(notes[2]).startswith("导出人：donghu_clerk，导出时间：")
    header = [c.value for c in sheet[4]]
    rows = list(sheet.iter_rows(min_row=5, values_only=True))
    assert rows and all(c.font.bold for c in sheet[4]) and sheet.freeze_panes == "A5"
    assert sheet.auto_filter.ref == f"A4:{sheet.cell(row=4, column=len(header)).column_letter}{4 + len(rows)}"
    assert header.count("社区") == 1 and "数据标记" not in header
    assert all(any(r[i] not in (None, "") for r in rows) for i in range(len(header)))  # no empty column
    widths = {
        h: sheet.column_dimensions[c.column_letter].width for h, c in zip(header, sheet[4], strict=True)
    }
    # Two more than the widest: 18 digits and stars; a Chinese character counts two, so 与户主关系 is 10.
    assert (widths["身份证号"], widths["与户主关系"], widths["性别"]) == (20, 12, 6)

    engine = sa.create_engine(desk.settings.resolved_database_url)
    with engine.connect() as conn:
        detail = conn.scalar(sa.text("SELECT detail FROM audit WHERE action = 'export' ORDER BY id DESC"))
    assert json.loads(detail)["file"] == name
    admin = browser.new_context()
    try:
        audit = admin.new_page()
        log_in(audit, desk, "director")
        audit.goto(f"{desk.url}/audit?action=export")
        words = f"标签含 独居老人；未登记于 养老服务；社区 {MINE}；文件 {name}"
        expect(audit.locator("table.audit tbody tr").first).to_contain_text(words)
    finally:
        admin.close()
