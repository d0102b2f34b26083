"""排摸 on the desk, end to end in real Chromium: a list made for a grid and a tag, walked on a phone,
reported, printed and exported masked, audited, and closed to another community."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from sandbox import World
from tests.desk_helpers import PASSWORD, log_in, seeded_desk, served
from tests.test_desk_http import client, csrf_of

pytestmark = pytest.mark.browser

MINE, OTHER = "donghu", "xiyuan"
TAG = "独居老人"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "device_scale_factor": 2}
MASKED_ID = re.compile(r"\d{6}\*{8}\d{3}[\dX]")


@dataclass(frozen=True)
class Desk:
    url: str
    engine: sa.Engine


@pytest.fixture(scope="module")
def desk(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    app = seeded_desk(world, tmp_path_factory.mktemp("visits"))
    staff = app.state.desk.staff
    staff.add("donghu_clerk", PASSWORD, role="staff", scope=MINE)
    staff.add("xiyuan_clerk", PASSWORD, role="staff", scope=OTHER)
    staff.add("director", PASSWORD, role="admin", scope=None)
    with served(app) as url:
        yield Desk(url, app.state.desk.snapshot.engine)


def matching(world: World, grid: str) -> pd.DataFrame:
    """The world's persons of MINE in ``grid`` tagged TAG."""
    people = world.persons
    return people[
        (people["community"] == MINE) & (people["grid"] == grid) & people["tags"].fillna("").str.contains(TAG)
    ]


def walking_order(world: World, grid: str) -> list[str]:
    """The households of ``matching`` persons, sorted by address."""
    homes = world.households[world.households["household_no"].isin(matching(world, grid)["household_no"])]
    return list(homes.sort_values(["address", "household_no"])["household_no"])


def make_list(page: Page, desk: Desk, grid: str) -> str:
    """A list made in the browser as staff make it; its page's path."""
    page.goto(f"{desk.url}/visits")
    page.get_by_label("网格").select_option(grid)
    page.get_by_label("标签").select_option(TAG)
    page.get_by_role("button", name="下一步").click()
    page.get_by_role("button", name="生成清单").click()
    expect(page).to_have_url(re.compile(r"/visits/\d+$"))
    return page.url.removeprefix(desk.url)


def a_list(app: FastAPI, admin: str) -> str:
    """A list of MINE's 第2网格 made through the desk's own form by ``admin``; its path (for other
    modules' pages, e.g. tests/test_desk_phone.py)."""
    browser = client(app, admin)
    query = {"community": MINE, "grid": "第2网格", "tags": TAG}
    form = browser.get("/visits/new", params=query)
    made = browser.post("/visits/new", params=query, data={"csrf": csrf_of(form.text), "title": ""})
    assert made.status_code == 303, made.text
    return made.headers["location"]


def shown_households(page: Page) -> list[str]:
    metas = page.locator("section.visit-household .meta").all_inner_texts()
    return [re.search(r"户号 (\S+)", m)[1] for m in metas]  # type: ignore[index]


def marks(desk: Desk) -> int:
    with desk.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM desk_visit_mark")) or 0


def test_a_list_is_made_walked_on_a_phone_and_reported(browser: Browser, desk: Desk, world: World) -> None:
    expected = walking_order(world, "第2网格")
    phone = browser.new_context(**PHONE)
    try:
        page = phone.new_page()
        log_in(page, desk, "donghu_clerk")
        page.goto(f"{desk.url}/visits")
        page.get_by_label("网格").select_option("第2网格")
        page.get_by_label("标签").select_option(TAG)
        page.get_by_role("button", name="下一步").click()
        expect(page.locator(".visit-count")).to_have_text(str(len(expected)))
        expect(page.get_by_label("清单名称")).to_have_value(f"第2网格 {TAG}")
        page.get_by_role("button", name="生成清单").click()
        expect(page).to_have_url(re.compile(r"/visits/\d+$"))
        path = page.url.removeprefix(desk.url)
        assert shown_households(page) == expected
        expect(page.locator(".tag.matched")).to_have_count(len(matching(world, "第2网格")))
        assert MASKED_ID.search(page.content())

        page.get_by_role("link", name="逐户走访").click()
        for outcome, note in (("不在家", ""), ("不在家", ""), ("已搬离", "邻居说已搬去女儿家")):
            page.get_by_label(re.compile("备注")).fill(note)
            page.get_by_role("button", name=outcome, exact=True).click()
            expect(page.locator(".notice.saved")).to_contain_text(outcome)
        expect(page.locator(".visit-current .meta")).to_contain_text(f"户号 {expected[3]}")  # next unchecked
        page.locator(".visit-all a").first.click()  # the first household again: a second answer wins
        page.get_by_role("button", name="已走访", exact=True).click()
        expect(page.locator(".visit-current .meta")).to_contain_text(f"户号 {expected[3]}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert marks(desk) == 4
        page.reload()
        page.go_back()
        page.go_back()
        page.reload()
        assert marks(desk) == 4, "Back or reload posted a mark again"
        page.goto(f"{desk.url}{path}/check?household={expected[0]}")
        expect(page.locator(".visit-history summary")).to_have_text("登记记录（2）")

        page.goto(desk.url + path)
        with page.expect_download() as download:
            page.get_by_role("button", name="排摸报告 Excel").click()
        book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    finally:
        phone.close()
    summary = list(book["汇总"].iter_rows(values_only=True))
    assert dict(zip(summary[0], summary[1], strict=True)) == {
        "网格": "第2网格",
        "户数": len(expected),
        "已排摸": 3,
        "已走访": 1,
        "不在家": 1,
        "已搬离": 1,
        "信息有变": 0,
        "未走访": len(expected) - 3,
    }
    rows = list(book["走访明细"].iter_rows(min_row=4, values_only=True))
    households = pd.DataFrame(rows[1:], columns=rows[0])
    assert list(households["户号"]) == expected
    moved = households.iloc[2]
    assert (moved["走访结果"], moved["备注"], moved["登记人"]) == (
        "已搬离",
        "邻居说已搬去女儿家",
        "donghu_clerk",
    )
    assert list(households["走访结果"][:3]) == ["已走访", "不在家", "已搬离"]
    with desk.engine.connect() as conn:
        details = conn.scalars(sa.text("SELECT detail FROM audit WHERE action = 'visit'")).all()
    assert len(details) == 4 and all(set(json.loads(d)) == {"list", "household"} for d in details)

    admin = browser.new_context()
    try:
        director = admin.new_page()
        log_in(director, desk, "director")
        director.goto(f"{desk.url}/visits")
        card = director.locator(".visit-lists li").filter(has=director.locator(f'a[href="{path}"]'))
        expect(card.locator(".visit-progress")).to_contain_text(f"3 / {len(expected)}")
        expect(card.locator("progress")).to_have_attribute("value", "3")
    finally:
        admin.close()


def test_the_sheet_and_xlsx_are_masked_and_audited_and_closed_to_others(
    page: Page, browser: Browser, desk: Desk, world: World
) -> None:
    log_in(page, desk, "donghu_clerk")
    refused = page.goto(f"{desk.url}/visits/new?grid=第1网格&gird=第1网格")
    assert refused is not None and refused.status == 400
    expect(page.locator("main")).to_contain_text("gird")
    path = make_list(page, desk, "第1网格")
    assert shown_households(page) == walking_order(world, "第1网格")
    numbers = set(world.persons["id_number"])

    page.get_by_role("link", name="打印排摸表").click()
    sheet = page.content()
    assert "☐ 已走访" in sheet and "☐ 信息有变" in sheet and MASKED_ID.search(sheet)
    assert not any(number in sheet for number in numbers)
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    page.emulate_media(media="screen")

    page.goto(desk.url + path)
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("导出清单")).click()
    book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    cells = " ".join(str(v) for row in book.active.iter_rows(values_only=True) for v in row if v is not None)
    assert MASKED_ID.search(cells) and not any(number in cells for number in numbers)

    with desk.engine.connect() as conn:
        audited = conn.execute(
            sa.text("SELECT action, actor, detail FROM audit WHERE detail LIKE '%\"list\"%'")
        )
        of_list = {(a, actor) for a, actor, detail in audited if json.loads(detail)["list"] == int(path[8:])}
    assert {("visit_sheet", "donghu_clerk"), ("export", "donghu_clerk")} <= of_list

    other = browser.new_context()
    try:
        theirs = other.new_page()
        log_in(theirs, desk, "xiyuan_clerk")
        for tail in ("", "/check", "/sheet"):
            answer = theirs.goto(desk.url + path + tail)
            assert answer is not None and answer.status == 404, tail
        theirs.goto(f"{desk.url}/visits")
        expect(theirs.locator(f'a[href="{path}"]')).to_have_count(0)
        csrf = theirs.locator("input[name=csrf]").first.get_attribute("value")
        household = walking_order(world, "第1网格")[0]
        posted = theirs.request.post(
            f"{desk.url}{path}/check", form={"csrf": str(csrf), "household": household, "outcome": "visited"}
        )
        assert posted.status == 404
    finally:
        other.close()
