"""本期变动 and the daily digest: after a second harvest of a community that moves a person out of grid
A, adds one to grid B, changes a phone in A and tags a new 独居老人 in B, each grid worker gets one
masked message with their grid's changes only (once a day, retried through a 500), and the desk's
/changes page shows the same per grid, in real Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, select
from typer.testing import CliRunner

from alerts.testing import Receiver
from cli import app
from desk._digest import SentDigest, set_grid
from robots.sandbox_population import Person
from sandbox import World
from store import Store, make_engine
from tests.desk_helpers import PASSWORD, seeded_desk, served

MINE = "donghu"
SECRET = "SECdigest0123456789abcdef"
TOKEN = "digest-token-0123456789"
NEWCOMER = "330102199203154417"
runner = CliRunner(env={"COLUMNS": "250"})


@dataclass(frozen=True)
class Grids:
    url: str
    data: Path
    a: str
    b: str
    gone: pd.Series  # moved out of grid A
    phoned: pd.Series  # a new phone in grid A
    tagged: pd.Series  # a new 独居老人 in grid B
    new_phone: str


@pytest.fixture(scope="module")
def grids(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grids]:
    data = tmp_path_factory.mktemp("changes")
    desk_app = seeded_desk(world, data)
    desk = desk_app.state.desk
    for name in ("wang", "li"):
        desk.staff.add(name, PASSWORD, role="staff", scope=MINE)
    desk.staff.add("director", PASSWORD, role="admin", scope=None)
    people = world.persons[world.persons["community"] == MINE]
    a, b = sorted(people["grid"].unique())[:2]
    set_grid(desk.snapshot.engine, "wang", a)
    set_grid(desk.snapshot.engine, "li", b)
    in_a, in_b = people[people["grid"] == a], people[people["grid"] == b]
    gone, phoned = in_a.iloc[0], in_a[in_a["phone"].notna()].iloc[1]
    untagged = in_b[~in_b["tags"].fillna("").str.contains("独居老人")]
    tagged = untagged.iloc[0]
    new_phone = "13912345678"
    rows = people.drop(index=gone.name).copy()
    rows.loc[phoned.name, "phone"] = new_phone
    rows.loc[tagged.name, "tags"] = ",".join(filter(None, [tagged["tags"] or "", "独居老人"]))
    newcomer = in_b.iloc[[1]].assign(id_number=NEWCOMER, name="欧阳新来", phone="13700001111", tags=None)
    rows = pd.concat([rows, newcomer]).drop(columns=["grid", "person_id"])
    store = Store(desk.snapshot.engine)
    run = store.begin_run(
        robot="persons", dataset="persons", model=Person, system="sandbox", account=MINE, scope=MINE
    )
    store.stage(run, rows.to_dict(orient="records"))
    store.publish(run)
    with served(desk_app) as url:
        yield Grids(url, data, a, b, gone, phoned, tagged, new_phone)


def _digest(grids: Grids, monkeypatch: pytest.MonkeyPatch, hook: Receiver, *args: str) -> str:
    monkeypatch.setenv("HARVEST_DATA_DIR", str(grids.data))
    monkeypatch.setenv("HARVEST_DATABASE_URL", f"sqlite:///{grids.data / 'harvest.db'}")
    targets = {
        "wang": {"webhook": f"{hook.url}/hook/wang?token={TOKEN}"},
        "li": {"dingtalk": f"{hook.url}/robot/send?access_token={TOKEN}", "secret": SECRET},
    }
    monkeypatch.setenv("HARVEST_DESK_DIGESTS", json.dumps(targets))
    monkeypatch.setenv("HARVEST_DESK_URL", "http://desk.example:8700")
    result = runner.invoke(app, ["desk", "digest", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_each_grid_worker_gets_their_grids_changes_once_a_day_masked(
    grids: Grids, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver() as hook:
        output = _digest(grids, monkeypatch, hook)
        assert "wang：已推送" in output and "li：已推送" in output
        by_path = {r.path: r for r in hook.requests}
        assert len(hook.requests) == 2 and set(by_path) == {"/hook/wang", "/robot/send"}
        wang = by_path["/hook/wang"].body["text"]
        li_request = by_path["/robot/send"]
        assert li_request.dingtalk_signature_valid(SECRET)
        li = li_request.body["markdown"]["text"]

        assert grids.a in wang and "迁出/注销 1 条" in wang and "信息变更 1 条" in wang
        assert grids.gone["name"][0] + "*" in wang and "139****5678" in wang
        assert "新迁入" not in wang and "新增标签" not in wang  # grid B's changes are not wang's
        assert grids.b in li and "新迁入/新增 1 条" in li and "新增标签 1 条" in li and "独居老人" in li
        assert "欧阳**" in li and "迁出" not in li and "信息变更" not in li
        assert f"/changes?grid={grids.b}" not in li  # the link is URL-encoded
        assert "http://desk.example:8700/changes?grid=" in li
        assert by_path["/hook/wang"].body["counts"] == {"arrived": 0, "gone": 1, "changed": 1, "tagged": 0}

        bodies = json.dumps([r.body for r in hook.requests], ensure_ascii=False)
        people = world.persons
        for column in ("name", "id_number", "phone"):
            leaked = [v for v in people[column].dropna() if len(v) > 1 and v in bodies]
            assert not leaked, f"{column} unmasked in a digest"
        assert NEWCOMER not in bodies and grids.new_phone not in bodies and "欧阳新来" not in bodies

        # Once a day: the same day again sends nothing.
        assert "今天已推送过" in _digest(grids, monkeypatch, hook)
        assert len(hook.requests) == 2

        # The next day: a 500 is retried and the digest marked sent once; nothing changed since.
        hook.answers.append((500, {}))
        output = _digest(grids, monkeypatch, hook, "--day", "2099-01-01")
        assert "wang：已推送" in output and "li：已推送" in output
        assert len(hook.requests) == 5
        retried = [r for r in hook.requests[2:] if r.path == "/hook/wang"]
        assert [r.status for r in retried] == [500, 200]
        assert "今日无变动" in retried[-1].body["text"]
        assert "wang：今天已推送过" in _digest(grids, monkeypatch, hook, "--day", "2099-01-01")
        assert len(hook.requests) == 5
    with Session(make_engine(f"sqlite:///{grids.data / 'harvest.db'}")) as session:
        sent = session.exec(select(SentDigest).where(SentDigest.user == "wang")).all()
    assert sorted(s.day.isoformat() for s in sent)[-1] == "2099-01-01" and len(sent) == 2


@pytest.mark.browser
def test_the_changes_page_shows_the_same_changes_per_grid(page: Page, grids: Grids) -> None:
    page.goto(f"{grids.url}/login")
    page.get_by_label("用户名").fill("wang")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("link", name="本期变动").click()
    main = page.locator("main")
    section_a = page.locator("section.changes").filter(has=page.locator("h2", has_text=grids.a))
    section_b = page.locator("section.changes").filter(has=page.locator("h2", has_text=grids.b))
    expect(section_a.locator(".gone li")).to_have_count(1)
    expect(section_a.locator(".gone li")).to_contain_text(grids.gone["name"][0] + "*")
    expect(section_a.locator(".changed .diff")).to_contain_text("139****5678")
    expect(section_b.locator(".arrived li")).to_contain_text("欧阳**")
    expect(section_b.locator(".tagged li")).to_have_count(1)
    expect(main).to_contain_text("首次采集")
    content = page.content()
    for value in (grids.gone["id_number"], grids.phoned["phone"], grids.new_phone, NEWCOMER, "欧阳新来"):
        assert value not in content

    section_b.locator(".arrived li").get_by_role("link", name="档案").click()
    expect(page.locator("h1")).to_contain_text("欧阳**")

    page.goto(f"{grids.url}/changes?grid={grids.a}")
    expect(page.locator("section.changes h2")).to_have_text([grids.a])
    expect(page.locator(".change-counts")).to_contain_text(re.compile(r"迁出/注销\s*1"))

    refused = page.goto(f"{grids.url}/changes?tags=x")
    assert refused is not None and refused.status == 400
    expect(main).to_contain_text("本页没有筛选条件 'tags'：本页可以按 起始日期、网格 筛选")
    refused = page.goto(f"{grids.url}/changes?since=last-week")
    assert refused is not None and refused.status == 400
    expect(main).to_contain_text("起始日期须写成 YYYY-MM-DD")
