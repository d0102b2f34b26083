"""The robot author's API without a browser: pages read by header text, declarations checked early."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import ClassVar

import pytest

from connectors import LayoutChanged, Polite, Politeness, SystemUnavailable
from connectors.sandbox import population
from robots import Field, Page, Record, Walk, robot
from robots._page import rename
from robots._registry import _ROBOTS
from robots.runtime import RobotDeclarationError, dataset_titles, discover, run_blocking
from robots.sandbox_population import Person

TABLE = """<table class="persons"><thead><tr><th>序号</th><th>姓名</th><th>身份证号</th></tr></thead>
<tbody><tr><td>1</td><td> 张三 </td><td><a href="#">11010519491231002X</a></td></tr>
<tr><td>2</td><td>李四</td><td>110105194912310029</td></tr>
<tr><td colspan="3">暂无数据</td></tr></tbody></table>"""


def test_table_maps_header_text_to_fields_in_any_column_order() -> None:
    page = Page(TABLE, "http://x/persons")
    rows = page.table("table.persons", columns={"身份证号": "id_number", "姓名": "name"})
    assert rows == [
        {"id_number": "11010519491231002X", "name": "张三"},
        {"id_number": "110105194912310029", "name": "李四"},
    ]
    assert page.rows == 2


def test_a_missing_header_is_drift_that_names_the_header_and_what_is_there() -> None:
    page = Page(TABLE.replace("身份证号", "公民身份号码"), "http://x/persons")
    with pytest.raises(LayoutChanged, match=r"身份证号.*公民身份号码"):
        page.table("table.persons", columns={"身份证号": "id_number"})
    with pytest.raises(LayoutChanged, match="没有表格"):
        page.table("table.households", columns={"户号": "household_no"})


def test_cards_of_label_value_pairs() -> None:
    html = "<div class='c'><dl><dt>名称</dt><dd>甲店</dd><dt>状态</dt><dd>存续</dd></dl></div>" * 2
    page = Page(html, "http://x/")
    assert page.records(".c", columns={"状态": "status"}) == [{"status": "存续"}] * 2
    with pytest.raises(LayoutChanged, match="缺少 经营者"):
        page.records(".c", columns={"经营者": "operator"})


def test_rename_of_api_fields_reports_the_missing_key() -> None:
    assert rename({"idCard": "1", "x": 2}, {"idCard": "id_number"}, "/api") == {"id_number": "1"}
    with pytest.raises(LayoutChanged, match=r"没有字段 idCard.*certNo"):
        rename({"certNo": "1"}, {"idCard": "id_number"}, "/api")


class Thing(Record):
    code: str = Field(key=True)
    when: dt.date | None = None


def test_robot_declarations_are_checked_where_they_are_written() -> None:
    async def walk(walk):
        yield {}

    class Keyless(Record):
        name: str

    with pytest.raises(TypeError, match="没有自然键"):
        robot(system=population, record=Keyless)(walk)
    with pytest.raises(RobotDeclarationError, match="五段 cron"):
        robot(system=population, record=Thing, schedule="nightly")(walk)
    with pytest.raises(RobotDeclarationError, match=r"system= 必须是一个 connectors\.System"):
        robot(system="population", record=Thing)(walk)  # type: ignore[arg-type]


def test_demo_robots_are_discovered_with_their_options() -> None:
    robots = discover()
    assert {"persons", "households", "elderly", "entities"} <= set(robots)
    persons = robots["persons"]
    assert (persons.system.name, persons.dataset, persons.schedule) == ("population", "persons", "0 2 * * *")
    assert persons.doc.startswith("账号所在社区的全部人员信息")


def test_politeness_spaces_request_starts_and_caps_those_in_flight() -> None:
    polite = Polite(Politeness(concurrency=2, rate=20), name="x")
    starts: list[float] = []
    in_flight = peak = 0

    async def one() -> None:
        nonlocal in_flight, peak
        async with polite.slot():
            starts.append(asyncio.get_running_loop().time())
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(10)))

    run_blocking(main)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert peak <= 2
    assert min(gaps) >= 0.05 - 0.005  # 20 per second


def test_a_system_that_keeps_failing_is_unavailable_after_the_retries() -> None:
    class Reply:
        status = 503
        headers: ClassVar[dict[str, str]] = {}

    calls = 0

    async def failing() -> Reply:
        nonlocal calls
        calls += 1
        return Reply()

    polite = Polite(Politeness(rate=1000, retries=2), name="民政")
    with pytest.raises(SystemUnavailable, match=r"民政 在重试 2 次后仍未应答 /x（HTTP 503）"):
        run_blocking(lambda: polite.fetch(failing, "/x"))
    assert calls == 3


def test_allowed_hours_wrap_around_midnight() -> None:
    night = Politeness(hours=(22, 6))
    assert night.allows(dt.datetime(2026, 1, 1, 23)) and night.allows(dt.datetime(2026, 1, 1, 5))
    assert not night.allows(dt.datetime(2026, 1, 1, 12))
    assert Politeness().allows(dt.datetime(2026, 1, 1, 12))


def test_a_dataset_keeps_the_title_one_of_its_robots_gives() -> None:
    @robot(system=population, record=Person, dataset="persons", name="t_untitled_persons")
    async def untitled(walk: Walk):  # sorts after "persons": its default title must not win
        yield {}

    try:
        assert dataset_titles()["persons"] == "人口信息"
    finally:
        _ROBOTS.pop("t_untitled_persons")
