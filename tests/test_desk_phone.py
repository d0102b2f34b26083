"""Every desk page on a 390 px phone and a 1366 px PC, in real Chromium: nothing runs off the screen
sideways (outside a box that scrolls), every tap target on the phone is a thumb's size, and each page
leaves a screenshot in test-results/ for a person to look at."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, select

from sandbox import World
from store._tables import Run
from tests.desk_helpers import PASSWORD, seeded_desk, served
from tests.test_desk_visits import a_list

pytestmark = pytest.mark.browser

MINE = "donghu"
TAP = 44  # px: the smallest tap target a thumb hits reliably
VIEWPORTS: dict[str, dict[str, Any]] = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "device_scale_factor": 2},
    "pc": {"viewport": {"width": 1366, "height": 768}},
}


@dataclass(frozen=True)
class Site:
    """The served desk and the records its pages are opened on."""

    url: str
    surname: str  # a search that finds many people
    person: str  # a person's sealed link token
    household: str  # a household number of ``MINE``


# Every page of the desk as (screenshot name, its path); a new page of the desk adds itself here.
PAGES: list[tuple[str, Callable[[Site], str]]] = [
    ("login", lambda site: "/login"),
    ("search", lambda site: f"/?q={quote(site.surname)}"),
    ("datasets", lambda site: "/datasets"),
    ("dataset", lambda site: f"/datasets/persons?tags={quote('独居老人')}&community={MINE}"),
    ("elderly", lambda site: "/datasets/elderly"),
    ("person", lambda site: f"/person/{site.person}"),
    ("household", lambda site: f"/household/{quote(site.household)}"),
    ("audit", lambda site: "/audit"),
    ("error", lambda site: "/datasets/no_such_dataset"),
    ("visits", lambda site: "/visits"),
    ("visits-new", lambda site: f"/visits/new?community={MINE}&grid={quote('第2网格')}"),
    ("visits-list", lambda site: "/visits/1"),  # made by the site fixture (a_list): the first list
    ("visits-check", lambda site: "/visits/1/check"),
    ("visits-sheet", lambda site: "/visits/1/sheet"),
    ("overview", lambda site: f"/overview?community={MINE}"),
    ("changes", lambda site: f"/changes?community={MINE}"),
]

# What the page shows against the two rules, from inside the page: every visible element whose right
# edge is past the viewport and that no sideways-scrolling box holds; every visible control lower
# than TAP. `details` are opened first, so what they hide is measured too.
MEASURE = """(tap) => {
  const width = document.documentElement.clientWidth;
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const scrolled = (el) => {
    for (let up = el.parentElement; up; up = up.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(up).overflowX)) return true;
    }
    return false;
  };
  const name = (el) => {
    const box = el.getBoundingClientRect();
    const text = (el.innerText || el.value || "").trim().split("\\n")[0].slice(0, 20);
    const size = `${Math.round(box.width)}x${Math.round(box.height)} right=${Math.round(box.right)}`;
    return `${el.tagName.toLowerCase()}.${el.className} "${text}" ${size}`;
  };
  const all = [...document.body.querySelectorAll("*")].filter(shown);
  return {
    wide: all.filter((el) => el.getBoundingClientRect().right > width + 0.5 && !scrolled(el)).map(name),
    small: all.filter((el) => el.matches("a, button, select, input, summary"))
      .filter((el) => el.getBoundingClientRect().height < tap).map(name),
    scroll: document.documentElement.scrollWidth,
    width,
  };
}"""


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One seeded desk for the module, one of its datasets harvested three days ago (stale)."""
    app = seeded_desk(world, tmp_path_factory.mktemp("phone"))
    desk = app.state.desk
    desk.staff.add("director", PASSWORD, role="admin", scope=None)
    with Session(desk.snapshot.engine) as session:
        for run in session.exec(select(Run).where(Run.dataset == "elderly")):
            run.started_at -= dt.timedelta(days=3)
            run.finished_at = run.started_at + dt.timedelta(minutes=2)
            session.add(run)
        session.commit()
    assert a_list(app, "director") == "/visits/1"  # after: the desk remembers freshness for a minute
    people = world.persons[world.persons["community"] == MINE]
    counts = people.groupby("household_no").size()
    household = str(counts[counts >= 3].index[0])
    surname = people["name"].str[0].value_counts().index[0]
    person = people[people["household_no"] == household].iloc[0]
    with served(app) as url:
        yield Site(url, surname, desk.sealer.seal(person["id_number"]), household)


def log_in(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/login")
    page.get_by_label("用户名").fill("director")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("header .who")).to_contain_text("director")


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_every_page_fits_the_screen(
    browser: Browser, site: Site, device: str, pytestconfig: pytest.Config
) -> None:
    folder = pytestconfig.rootpath / "test-results"
    folder.mkdir(exist_ok=True)
    context = browser.new_context(**VIEWPORTS[device])
    try:
        page = context.new_page()
        log_in(page, site)
        problems = []
        for name, path in PAGES:
            answer = page.goto(site.url + path(site))
            assert answer is not None and (answer.ok or name == "error"), (name, answer and answer.status)
            shot = page.screenshot(path=str(folder / f"desk-{name}-{device}.png"), full_page=True)
            page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
            found = page.evaluate(MEASURE, TAP)
            problems += [f"{name}: wider than the screen: {w}" for w in found["wide"]]
            if found["scroll"] > found["width"]:
                problems.append(f"{name}: the page scrolls sideways ({found['scroll']} > {found['width']})")
            if device == "phone":
                problems += [f"{name}: smaller than {TAP}px to tap: {s}" for s in found["small"]]
            assert shot.startswith(b"\x89PNG")
        assert not problems, "\n".join(problems[:40])
        _lists_and_freshness(page, site, device)
    finally:
        context.close()


def _lists_and_freshness(page: Page, site: Site, device: str) -> None:
    """A dataset's list is cards on the phone and a table on the PC; the search box is wide enough to
    type in; the freshness line is one line that says what is stale, the whole list a tap away."""
    page.goto(f"{site.url}/")
    box = page.get_by_label("检索内容").bounding_box()
    assert box is not None and box["width"] >= 200
    page.goto(f"{site.url}/datasets/persons?community={MINE}")
    cards, table = page.locator("ul.cards > li"), page.locator("table.data")
    if device == "phone":
        expect(table).to_be_hidden()
        expect(cards).to_have_count(len(page.locator("table.data tbody tr").all()))
        first = cards.first
        expect(first.locator(".id")).to_have_text(re.compile(r"\d{6}\*{8}\d{3}[\dX]"))
        expect(first.locator(".age")).to_have_text(re.compile(r"\d+ 岁"))
        expect(first.get_by_role("link", name="同户")).to_be_visible()
        first.get_by_role("link", name="档案").click()
        expect(page).to_have_url(re.compile(r"/person/"))
        expect(page.locator("h1")).to_contain_text("*")
    else:
        expect(cards.first).to_be_hidden()
        expect(table).to_be_visible()

    fresh = page.locator("details.fresh")
    summary = fresh.locator("summary")
    expect(summary).to_contain_text(re.compile(r"数据更新于 \d\d-\d\d \d\d:\d\d（北京时间）"))
    expect(summary.locator(".stale")).to_have_text("，1 项已过期")
    box = summary.bounding_box()
    assert box is not None and box["height"] <= 48, "the freshness line takes more than one line"
    expect(fresh.locator(".all")).to_be_hidden()
    summary.click()
    expect(fresh.locator(".all")).to_contain_text("养老服务数据更新于")
    expect(fresh.locator(".all .stale")).to_contain_text("（已过期）")
