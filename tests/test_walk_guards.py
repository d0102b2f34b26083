"""Every walk ends, and ends at the real end: on a system whose paging misleads, a walk gets every
record or fails ``layout_changed`` (itself, or by the total it reports for the runner to check).

Each test logs in once and walks several paging shapes in that session, which keeps them quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors import LayoutChanged, SystemUnavailable
from connectors.sandbox import population
from robots import Walk, robot
from robots.runtime import RobotDeclarationError, registered, run_blocking
from robots.sandbox_population import Person
from tests.desk_helpers import served
from tests.walk_helpers import COLUMNS, ListSystem, list_app, logged_in, walk_once, walked

pytestmark = pytest.mark.browser
PAGER = ".pages a, .pages span"
LASTS = {"with last": PAGER, "without last": None}


@pytest.fixture
def lists() -> Iterator[ListSystem]:
    system = ListSystem()
    with served(list_app(system)) as url:
        system.url = url
        yield system


def numbered(last: str | None = PAGER):
    async def walk(walk: Walk):
        async for page in walk.pages("/list?page={n}", last=last):
            for row in page.table("table.grid", COLUMNS):
                yield row

    return walk


def clicked(path: str, frame: str | None = None):
    async def walk(walk: Walk):
        async for page in walk.follow(path, next="#next", render=True, frame=frame):
            for row in page.table("table.grid", COLUMNS):
                yield row

    return walk


SHAPES: dict[str, dict[str, Any]] = {
    "a plain pager": {},
    "past the end: a redirect to page 1": {"past_end": "redirect"},
    "past the end: a redirect to the home page": {"past_end": "index"},
    "past the end: page 1 again": {"past_end": "first"},
    "pages from 0": {"zero_based": True, "past_end": "redirect"},
    "7 of 50 numbers shown, from 0, a 末页 link, no total": {
        "records": 250,
        "window": 7,
        "zero_based": True,
        "stated": 0,
    },
    "7 of 50 numbers shown, a stated total, no 末页": {"records": 250, "window": 7, "last_link": False},
    "a pager that under-counts": {"pager_pages": 2, "last_link": False, "stated": 0},
    "no pager at all": {"pager": False, "stated": 0, "past_end": "redirect"},
}
MISCOUNTED = {"a pager that under-counts", "no pager at all"}  # the walk reads on past them, warning


def test_every_paging_shape_yields_every_record(lists: ListSystem) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            for shape, switches in SHAPES.items():
                for how, last in LASTS.items():
                    await lists.settled()
                    lists.reset(**switches)
                    done = await walked(session, numbered(last))
                    case = f"{shape}, {how}"
                    assert done.error is None, f"{case}: {done.error}"
                    assert sorted(set(done.ids)) == lists.ids(), case
                    assert len(done.ids) <= len(lists.ids()) + lists.switches.size, case  # one page again
                    assert done.expected in (None, lists.switches.records), case
                    assert max(lists.requested) <= lists.first + lists.pages + 2 * 2, case  # no runaway
                    undercounted = any("翻页栏只显示" in w for w in done.warnings)
                    assert undercounted == (last is not None and shape in MISCOUNTED), case

    run_blocking(go)


def test_a_page_sent_elsewhere_before_the_pager_count_is_drift(lists: ListSystem) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            for past_end, said in (("redirect", "被转到了 /list?page=1"), ("first", "重复了前面各页的行")):
                lists.reset(pager_pages=8, stated=0, past_end=past_end)  # 5 pages; the pager says 8
                done = await walked(session, numbered())
                assert isinstance(done.error, LayoutChanged), past_end
                assert f"第 6 页（共 8 页）{said}" in str(done.error)

    run_blocking(go)


def test_a_total_larger_than_the_pages_hold_is_left_to_the_runner(lists: ListSystem) -> None:
    lists.reset(stated=40)  # 23 records in 5 pages; the page says 40 (8 pages)
    done = walk_once(lists, numbered())
    assert done.error is None and sorted(done.ids) == lists.ids()
    assert {6, 7, 8, 9} <= set(lists.requested)  # the stated total was read as pages, then one more
    assert done.expected == 40  # more than the walk yielded: the runner ends the run layout_changed


def test_a_system_that_never_ends_stops_at_max_pages(
    lists: ListSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            for how, last in LASTS.items():
                lists.reset(endless=True)
                done = await walked(session, numbered(last), max_pages=9)
                assert isinstance(done.error, LayoutChanged), how
                assert "读了 10 页后停止" in str(done.error) and "max_pages=9" in str(done.error)
                assert "HARVEST_MAX_PAGES" in str(done.error)
                assert len(lists.requested) <= 10 + 2, how  # the cap, one past it, what was in flight

            monkeypatch.setenv("HARVEST_MAX_PAGES", "3")
            lists.reset(endless=True)
            done = await walked(session, numbered(None))
            assert isinstance(done.error, LayoutChanged) and "max_pages=3" in str(done.error)

            lists.reset(records=250, window=7)
            done = await walked(session, numbered(), max_pages=20)
            assert isinstance(done.error, LayoutChanged) and "翻页栏显示共 50 页" in str(done.error)
            assert lists.requested == [1]  # known to be too long before reading the rest

    run_blocking(go)


def test_a_walk_without_a_pager_keeps_pages_in_flight(lists: ListSystem) -> None:
    lists.reset(records=60, delay=0.1, pager=False)
    done = walk_once(lists, numbered(None), concurrency=3)
    assert done.error is None and sorted(done.ids) == lists.ids()
    assert 1 < lists.max_in_flight <= 3
    assert max(lists.requested) <= lists.pages + 3  # what was in flight past the end, no more


async def api_items(walk: Walk):
    async for rows in walk.api_pages("/api/list", size=4):
        for row in rows:
            yield row


async def exported(walk: Walk):
    for row in await walk.excel("/export.xlsx", columns=COLUMNS):
        yield row


def test_the_api_walk_reads_every_page_and_reports_the_total(lists: ListSystem) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            done = await walked(session, api_items)
            assert done.error is None and sorted(done.ids) == lists.ids() and done.expected == 23
            lists.reset(api_ignores_page=True)
            done = await walked(session, api_items)
            assert isinstance(done.error, LayoutChanged) and "'pageNum'" in str(done.error)

    run_blocking(go)


def test_an_api_total_of_0_or_an_export_of_headers_only_says_the_list_is_empty(lists: ListSystem) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            for robot in (api_items, exported):
                lists.reset()
                done = await walked(session, robot)
                assert done.error is None and sorted(done.ids) == lists.ids(), robot.__name__
                assert not done.walk.tally.said_empty, robot.__name__
                lists.reset(records=0)
                done = await walked(session, robot)
                assert done.error is None and done.ids == [], robot.__name__
                assert done.walk.tally.said_empty, robot.__name__  # the runner may end such a run ok
                assert done.expected == (0 if robot is api_items else None)

    run_blocking(go)


def test_a_postback_pager_is_clicked_to_its_last_page_even_across_a_lost_session(lists: ListSystem) -> None:
    async def go() -> None:
        async with logged_in(lists) as session:
            for path, frame in (("/postback", None), ("/framed", "#work")):
                lists.reset()
                done = await walked(session, clicked(path, frame))
                assert done.error is None and done.ids == lists.ids(), path
                assert done.walk.pages_read == lists.pages
            lists.reset(expire_after=3)
            done = await walked(session, clicked("/postback"))
            assert done.error is None and done.ids == lists.ids()  # each record once, in order
            assert session.logins == 2

    run_blocking(go)


def test_max_pages_is_declared_per_robot() -> None:
    async def walk(walk: Walk):
        yield {}

    robot(system=population, record=Person, name="t_capped", max_pages=50)(walk)
    assert registered()["t_capped"].max_pages == 50
    with pytest.raises(RobotDeclarationError, match="max_pages=0"):
        robot(system=population, record=Person, name="t_capped", max_pages=0)(walk)


CLICK_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {  # where the list is; which page fails twice, how
    "a click": ("/postback", {"failing": 3}),
    "the first load in the frame": ("/framed", {"failing": 1}),
    "a click in the frame": ("/framed", {"failing": 3}),
    "a click in the frame, the page it left not like before": ("/framed", {"failing": 3, "stamped": True}),
    "a click in the frame, the connection dropped": ("/framed", {"failing": 3, "dropping": True}),
}


def test_a_postback_pager_answering_500s_or_nothing_is_clicked_again_and_loses_nothing(
    lists: ListSystem,
) -> None:
    async def go() -> None:
        async with logged_in(lists, retries=2) as session:
            for case, (path, faults) in CLICK_FAULTS.items():
                lists.reset(records=12, fails=2, **faults)  # 3 pages
                done = await walked(session, clicked(path, "#work" if path == "/framed" else None))
                assert done.error is None, f"{case}: {done.error}"
                assert done.ids == lists.ids(), case  # every record once, in order
                assert lists.switches.fails == 0 and done.walk.pages_read == lists.pages, case
                # Back to the page the click left, or where it is not the same, the list loaded again.
                assert lists.loads == (3 if faults.get("stamped") or faults["failing"] == 1 else 1), case
            lists.reset(records=12, failing=3, fails=3)
            done = await walked(session, clicked("/framed", "#work"))
            assert isinstance(done.error, SystemUnavailable)
            assert "重试 2 次后仍没有答复/framed 的第 3 页（HTTP 500）" in str(done.error)
            assert done.ids == lists.ids()[: 2 * lists.switches.size]

    run_blocking(go)
