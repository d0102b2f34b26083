"""The record carries its own mapping: tables, cards, JSON and spreadsheets are read by each field's
title, aliases, name or camelCase; the community comes from the account's scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from connectors import Fetched, LayoutChanged, Polite, Politeness, System
from robots import Field, Record, Walk
from robots._page import Page, rename
from robots._records import validated
from robots._registry import RobotSpec
from robots.runtime import run_blocking
from settings import load_settings
from store import RecordDeclarationError

SYSTEM = System(name="t_mapping", title="测试系统", base_url="http://127.0.0.1:9", home="/", logged_in="#u")


class Resident(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号", aliases=("公民身份号码", "idCard"))
    full_name: str = Field(role="name", title="姓名")
    born: dt.date = Field(role="birth_date", title="出生日期")
    community: str = Field(role="community", title="社区")


def _table(*headers: str, row: tuple[str, ...]) -> Page:
    head = "".join(f"<th>{h}</th>" for h in headers)
    cells = "".join(f"<td>{c}</td>" for c in row)
    return Page(f"<table class='t'><tr>{head}</tr><tr>{cells}</tr></table>", "http://127.0.0.1:9/list")


def test_a_table_is_read_by_titles_and_an_alias_absorbs_a_vendors_rename() -> None:
    before = _table("姓名", "身份证号", "出生日期", row=("张三", "110105194912310029", "1949年12月31日"))
    after = _table("出生日期", "公民身份号码", "姓 名", row=("1949-12-31", "110105194912310029", "张三"))
    for page in (before, after):
        (row,) = page.table("table.t", Resident)
        assert row["full_name"] == "张三" and row["id_number"] == "110105194912310029"
        assert "community" not in row  # not on the page: the scope fills it


def test_a_missing_title_is_drift_naming_the_header_staff_know() -> None:
    page = _table("姓名", "身份证号", row=("张三", "110105194912310029"))
    with pytest.raises(LayoutChanged, match="出生日期"):
        page.table("table.t", Resident)


def test_json_keys_match_the_field_name_its_camel_case_and_aliases() -> None:
    class Care(Record):
        archive_no: str = Field(key=True, title="档案编号")
        id_number: str = Field(role="id_number", title="身份证号", aliases=("idCard",))
        start_date: dt.date = Field(title="开始日期")

    item = {"archiveNo": "YL1", "idCard": "110105194912310029", "startDate": "2020-01-02", "x": 1}
    assert rename(item, Care, "/api") == {
        "archive_no": "YL1",
        "id_number": "110105194912310029",
        "start_date": "2020-01-02",
    }
    with pytest.raises(LayoutChanged, match="start_date"):
        rename({"archiveNo": "YL1", "idCard": "1"}, Care, "/api")


def test_cards_are_read_by_their_labels() -> None:
    html = (
        "<div class='card'><dl><dt>姓名：</dt><dd>张三</dd><dt>公民身份号码</dt><dd>110105194912310029</dd>"
        "<dt>出生日期</dt><dd>1949-12-31</dd></dl></div>"
    )
    (row,) = Page(html, "http://127.0.0.1:9/cards").records(".card", Resident)
    assert row == {"id_number": "110105194912310029", "full_name": "张三", "born": "1949-12-31"}


def test_aliases_must_be_a_sequence_of_texts() -> None:
    with pytest.raises(RecordDeclarationError, match="aliases"):
        Field(title="姓名", aliases="name")


class _Pages:
    """The ``Fetcher`` protocol over pages held in memory, as a test builds a walk by hand."""

    def __init__(self, pages: Mapping[str, str]) -> None:
        self.system = SYSTEM
        self.polite = Polite(Politeness(rate=1000, concurrency=4))
        self.pages = pages

    async def fetch(self, path: str, *, params=None, form=None, what: str = "") -> Fetched:
        html = self.pages[path.removeprefix(SYSTEM.base_url)]
        return Fetched(SYSTEM.url(path), 200, {"content-type": "text/html; charset=utf-8"}, html.encode())


def _spec(walk_function) -> RobotSpec:
    return RobotSpec(
        name="t_residents",
        walk=walk_function,
        system=SYSTEM,
        record=Resident,
        dataset="t_residents",
        title="居民",
        schedule="0 2 * * *",
        allow=frozenset(),
        invalid_tolerance=0.01,
        max_pages=None,
        module=__name__,
        doc="",
    )


async def _records(fetcher: _Pages, walk_function) -> list[Record]:
    walk = Walk(fetcher, run_id="t-run", account="donghu", scope="donghu", settings=load_settings())
    return [record async for record in validated(_spec(walk_function), walk)]


def test_the_community_comes_from_the_accounts_scope_unless_the_page_shows_one() -> None:
    headers = ("姓名", "身份证号", "出生日期", "社区")
    html = _table(*headers, row=("张三", "110105194912310029", "1949-12-31", "")).html
    shown = _table(*headers, row=("李四", "11010519491231002X", "1949-12-31", "西苑")).html
    html = html.replace("</table>", "</table><a class='next' href='/b'>下一页</a>")

    def residents(walk: Walk):
        return walk.follow("/a", next="a.next").table("table.t", Resident)

    fetcher = _Pages({"/a": html, "/b": shown})
    records = run_blocking(lambda: _records(fetcher, residents))
    assert [(r.full_name, r.community) for r in records] == [("张三", "donghu"), ("李四", "西苑")]
