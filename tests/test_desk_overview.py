"""数据概览 in real Chromium over a real snapshot: the per-grid counts are the world's, the movement is the
second harvest's, and every number opens a list of that many records."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect

from desk._overview import NO_GRID, RECORDS, TOTAL, change_text
from robots.sandbox_population import Person
from sandbox import World
from store import Store, id_number_check_digit, split_tags
from tests.desk_helpers import PASSWORD, log_in, seeded_desk, served

pytestmark = pytest.mark.browser

MINE = "donghu"
# Each section's table as the page shows it: title, column heads, and per row its grid and cells.
TABLES = """() => [...document.querySelectorAll("section.ov-section")].map((s) => ({
  title: s.querySelector("h2").innerText,
  heads: [...s.querySelectorAll("thead th")].slice(1).map((th) => th.innerText),
  charts: [...s.querySelectorAll(".ov-charts svg")].filter((svg) => svg.querySelector("rect")).length,
  rows: [...s.querySelectorAll("tbody tr")].map((tr) => ({
    grid: tr.querySelector("th").innerText,
    cells: [...tr.querySelectorAll("td")].map((td) => ({
      count: Number(td.querySelector(".ov-count").innerText),
      href: td.querySelector("a.ov-count")?.getAttribute("href") ?? null,
      change: td.querySelector(".ov-change")?.innerText ?? "",
    })),
  })),
}))"""


@dataclass(frozen=True)
class Site:
    url: str
    before: pd.DataFrame  # the community's persons at the first harvest, with their grid
    after: pd.DataFrame  # and at the second
    households: pd.DataFrame


def second_harvest(world: World) -> pd.DataFrame:
    """MINE's persons as a second harvest sees them: three of 第1网格 gone, two new in a household of
    第2网格 (独居老人, 流动人口), one tagged 低保 and one 独居老人 no more."""
    people = world.persons[world.persons["community"] == MINE].reset_index(drop=True)
    first = people[people["grid"] == "第1网格"]
    plain = people[(people["tags"] == "") & (people["grid"] == "第3网格")].index[0]
    alone = people[(people["tags"] == "独居老人") & (people["grid"] == "第3网格")].index[0]
    edited = people.drop(first.index[:3]).copy()
    edited.loc[plain, "tags"] = "低保"
    edited.loc[alone, "tags"] = ""
    host = people[people["grid"] == "第2网格"].iloc[0]
    arrivals = []
    for n in range(2):
        body = f"33010219400101{900 + n:03d}"
        arrivals.append(
            host.to_dict()
            | {"id_number": body + id_number_check_digit(body), "name": f"新来{n}", "phone": None}
            | {"tags": "独居老人", "residence_type": "流动人口", "relation": "其他"}
        )
    return pd.concat([edited, pd.DataFrame(arrivals)], ignore_index=True)


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    app = seeded_desk(world, tmp_path_factory.mktemp("overview"))
    desk = app.state.desk
    after = second_harvest(world)
    store = Store(desk.snapshot.engine)
    run = store.begin_run(
        robot="persons", dataset="persons", model=Person, system="sandbox", account=MINE, scope=MINE
    )
    store.stage(run, after.drop(columns=["person_id", "grid"]).to_dict(orient="records"))
    store.publish(run)
    desk.staff.add("donghu_clerk", PASSWORD, role="staff", scope=MINE)
    desk.staff.add("director", PASSWORD, role="admin", scope=None)
    before = world.persons[world.persons["community"] == MINE]
    households = world.households[world.households["community"] == MINE]
    with served(app) as url:
        yield Site(url, before, after, households)


def by_grid(frame: pd.DataFrame, field: str | None) -> dict[str, Counter[str]]:
    """Per column head (记录数, a tag, a category value): the count per grid, and its 合计."""
    out: dict[str, Counter[str]] = {}
    for row in frame.to_dict(orient="records"):
        heads = [RECORDS] if field is None else split_tags(row[field]) if field == "tags" else [row[field]]
        for head in heads:
            out.setdefault(head, Counter()).update({row["grid"]: 1, TOTAL: 1})
    return out


def shown(section: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        head: {row["grid"]: row["cells"][i]["count"] for row in section["rows"]}
        for i, head in enumerate(section["heads"])
    }


def expected(frame: pd.DataFrame, field: str | None, grids: list[str]) -> dict[str, dict[str, int]]:
    return {head: {g: counts[g] for g in [*grids, TOTAL]} for head, counts in by_grid(frame, field).items()}


def listed(page: Page, site: Site, href: str) -> int:
    """The 共 N 条 of the list a number links to, fetched over HTTP in the user's session."""
    response = page.request.get(site.url + href)
    assert response.status == 200, href
    return int(re.search(r"共 (\d+) 条", response.text()).group(1))


def test_the_overview_counts_the_world_moves_with_the_harvest_and_every_number_opens_its_list(
    page: Page, site: Site
) -> None:
    log_in(page, site, "donghu_clerk")
    page.get_by_role("link", name="数据概览").click()
    expect(page.locator("h1")).to_have_text(f"数据概览 · {MINE}")  # no names configured
    sections = {s["title"]: s for s in page.evaluate(TABLES)}
    grids = sorted(site.households["grid"].unique())
    for title, field in (
        ("人口信息", None),
        ("人口信息 · 按标签", "tags"),
        ("人口信息 · 按人口类型", "residence_type"),
        ("人口信息 · 按性别", "gender"),
    ):
        assert shown(sections[title]) == expected(site.after, field, grids), title
        # The movement: each number's change since the first harvest.
        now, then = by_grid(site.after, field), by_grid(site.before, field)
        changes = {
            (row["grid"], head): row["cells"][i]["change"]
            for row in sections[title]["rows"]
            for i, head in enumerate(sections[title]["heads"])
        }
        assert changes == {
            (g, head): change_text([then.get(head, Counter())[g], now[head][g]])
            for g in [*grids, TOTAL]
            for head in now
        }, title
    homes = shown(sections["户籍信息"])
    assert homes == {
        RECORDS: {**site.households["grid"].value_counts().to_dict(), TOTAL: len(site.households)}
    }
    assert shown(sections["户籍信息 · 按小区"]) == expected(site.households, "compound", grids)
    assert not any(row["grid"] == NO_GRID for s in sections.values() for row in s["rows"])
    for title, section in sections.items():
        assert section["charts"] == len(section["heads"]), f"{title}: an SVG bar chart per measure"

    # Every number the list page can filter links to it; follow the 合计 and one grid of each column.
    followed = 0
    for title, section in sections.items():
        category = "按" in title and not title.endswith("按标签")  # the list page has no filter for it
        for row in section["rows"]:
            for cell in row["cells"]:
                assert (cell["href"] is None) == category, (title, row["grid"])
        for row in (section["rows"][0], section["rows"][-1]):
            for cell in row["cells"]:
                if cell["href"]:
                    assert listed(page, site, cell["href"]) == cell["count"], cell["href"]
                    followed += 1
    assert followed == 2 * (1 + 3 + 1)  # persons, each of three tags, households

    content = page.content()
    everyone = pd.concat([site.before, site.after])
    for column in ("id_number", "phone", "address", "name"):
        values = {str(v) for v in everyone[column].dropna() if len(str(v)) > 1}
        assert not [v for v in values if v in content], column


def test_admins_pick_a_community_and_unknown_parameters_are_refused(
    page: Page, browser: Browser, site: Site
) -> None:
    log_in(page, site, "donghu_clerk")
    for query, says in (
        ("?grid=第1网格", "本页没有参数 'grid'"),
        (f"?community={MINE}", "只显示您所在社区"),
    ):
        response = page.request.get(f"{site.url}/overview{query}")
        assert response.status == 400 and says in html.unescape(response.text()), query

    admin = browser.new_page()
    try:
        log_in(admin, site, "director")
        admin.goto(f"{site.url}/overview")
        admin.get_by_label("社区").select_option(MINE)
        admin.get_by_role("button", name="查看").click()
        expect(admin.locator("h1")).to_have_text(f"数据概览 · {MINE}")
        total = admin.locator(
            "section.ov-section", has=admin.get_by_role("heading", name="人口信息", exact=True)
        )
        total = total.locator("tr.ov-total a.ov-count")
        href = total.get_attribute("href")
        assert href == f"/datasets/persons?community={MINE}"
        assert listed(admin, site, href) == len(site.after) == int(total.inner_text())
        response = admin.request.get(f"{site.url}/overview?community=nowhere")
        assert response.status == 400 and "没有社区 'nowhere' 的数据" in html.unescape(response.text())
    finally:
        admin.close()
