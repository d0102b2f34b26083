"""The desk as staff meet it: real Chromium against the desk served on 127.0.0.1 over a real snapshot."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from desk import create_app
from sandbox import World
from settings import Settings, load_settings
from tests.desk_helpers import PASSWORD, log_in, seeded_desk, served

pytestmark = pytest.mark.browser

MASKED_ID = re.compile(r"\d{6}\*{8}\d{3}[\dX]")
MASKED_PHONE = re.compile(r"1\d{2}\*{4}\d{4}")
MINE, OTHER = "donghu", "xiyuan"


@dataclass(frozen=True)
class Desk:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def desk(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """One snapshot of the test world and one served desk for the module; users per community."""
    data = tmp_path_factory.mktemp("desk")
    app = seeded_desk(world, data)
    staff = app.state.desk.staff
    staff.add("donghu_clerk", PASSWORD, role="staff", scope=MINE)
    staff.add("xiyuan_clerk", PASSWORD, role="staff", scope=OTHER)
    staff.add("director", PASSWORD, role="admin", scope=None)
    with served(app) as url:
        yield Desk(url, app.state.desk.settings)


def only_in(world: World, community: str) -> pd.Series:
    """A person whose 2-character name nobody outside ``community`` has."""
    people = world.persons
    outside = set(people.loc[people["community"] != community, "name"])
    mine = people[(people["community"] == community) & (people["name"].str.len() == 2)]
    return mine[~mine["name"].isin(outside)].iloc[0]


def test_staff_find_a_person_and_household_masked_and_a_reveal_is_audited(
    page: Page, browser: Browser, desk: Desk, world: World
) -> None:
    person = only_in(world, MINE)
    log_in(page, desk, "donghu_clerk")
    page.get_by_label("检索内容").fill(person["name"])
    page.get_by_role("button", name="查询").click()
    hits = page.locator("ul.hits li")
    expect(hits.first).to_contain_text(person["name"][0] + "*")
    expect(hits.first.locator(".id")).to_have_text(
        person["id_number"][:6] + "********" + person["id_number"][-4:]
    )

    hits.first.locator("a.hit").click()
    expect(page.locator("h1")).to_contain_text(person["name"][0] + "*")
    content = page.content()
    assert person["id_number"] not in content and person["phone"] not in content
    assert MASKED_ID.search(content) and MASKED_PHONE.search(content)
    assert person["id_number"] not in page.url  # the link seals the number

    page.get_by_role("link", name="同户人员").first.click()
    members = world.persons[world.persons["household_no"] == person["household_no"]]
    expect(page.get_by_role("link", name="查看此人")).to_have_count(len(members))
    assert not any(number in page.content() for number in members["id_number"])
    page.go_back()

    page.locator("details.reveal summary").click()
    page.get_by_label("查看理由").fill("入户核查需联系本人")
    page.get_by_role("button", name="确认显示").click()
    expect(page.locator(".notice")).to_contain_text("入户核查需联系本人")
    expect(page.locator("main")).to_contain_text(person["id_number"])
    expect(page.locator("main")).to_contain_text(person["phone"])

    admin = browser.new_context()
    try:
        audit = admin.new_page()
        log_in(audit, desk, "director")
        audit.goto(f"{desk.url}/audit?actor=donghu_clerk&action=reveal")
        row = audit.locator("table.audit tbody tr").filter(has_text="人口信息").first
        expect(row).to_contain_text("入户核查需联系本人")
        expect(row).to_contain_text("查看完整信息")
        assert person["id_number"] not in audit.content()  # whose data it was, masked again
    finally:
        admin.close()


def test_staff_cannot_reach_another_communitys_people(
    page: Page, browser: Browser, desk: Desk, world: World
) -> None:
    theirs = only_in(world, OTHER)
    # A link to their person, as a colleague of the other community would have it.
    other = browser.new_context()
    try:
        colleague = other.new_page()
        log_in(colleague, desk, "xiyuan_clerk")
        colleague.goto(f"{desk.url}/?q={theirs['name']}")
        person_link = colleague.locator("ul.hits a.hit").first.get_attribute("href")
    finally:
        other.close()
    assert person_link

    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/?q={theirs['name']}")
    expect(page.locator("ul.hits li.empty")).to_be_visible()

    for path in (person_link, f"/household/{theirs['household_no']}"):
        response = page.goto(desk.url + path)
        assert response is not None and response.status == 404, path
        assert theirs["name"][0] + "*" not in page.content()

    # Another community asked for in the address is refused, not quietly narrowed to mine.
    for query in (f"community={OTHER}", f"scope={OTHER}"):
        response = page.goto(f"{desk.url}/datasets/persons?{query}")
        assert response is not None and response.status == 400, query
        expect(page.locator("main")).to_contain_text("本页没有筛选条件")
        assert theirs["name"][0] + "*" not in page.content()

    tags = "独居老人"
    page.goto(f"{desk.url}/datasets/persons?tags={tags}")
    csrf = page.locator("form[action*='/export'] input[name=csrf]").get_attribute("value")
    forged = page.request.post(
        f"{desk.url}/datasets/persons/export?tags={tags}&community={OTHER}", form={"csrf": csrf or ""}
    )
    assert forged.status == 400 and "本页没有筛选条件" in forged.text()
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile("导出")).click()
    exported = pd.read_excel(download.value.path(), skiprows=3, dtype=str)  # under three lines of notes
    assert set(exported["社区"]) == {MINE}
    wanted = world.persons[(world.persons["community"] == MINE) & world.persons["tags"].str.contains(tags)]
    assert len(exported) == len(wanted)


def test_export_is_a_valid_xlsx_of_the_rows_on_screen_masked(page: Page, desk: Desk, world: World) -> None:
    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/datasets/persons?tags=独居老人")
    headers = page.locator("table.data thead th").all_inner_texts()
    column = headers.index("身份证号") + 1
    on_screen = page.locator(f"table.data tbody tr td:nth-child({column})").all_inner_texts()
    assert 0 < len(on_screen) < 50 and all(MASKED_ID.fullmatch(v) for v in on_screen)

    with page.expect_download() as download:
        page.get_by_role("button", name="导出 Excel（脱敏）").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    sheet = book.active
    assert "数据更新于" in str(sheet.cell(row=1, column=1).value)
    rows = list(sheet.iter_rows(min_row=4, values_only=True))
    header, body = list(rows[0]), rows[1:]
    exported = [str(r[header.index("身份证号")]) for r in body]
    assert exported == on_screen
    phones = [r[header.index("手机号")] for r in body if r[header.index("手机号")]]
    assert phones and all(MASKED_PHONE.fullmatch(str(p)) for p in phones)


HOSTILE = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "王'; DROP TABLE snap_persons; --",
    "%' UNION SELECT password_hash FROM desk_user --",
]


def test_hostile_input_comes_back_inert(page: Page, browser: Browser, desk: Desk, world: World) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    person = only_in(world, MINE)
    log_in(page, desk, "donghu_clerk")
    for text in HOSTILE:
        page.goto(f"{desk.url}/")
        page.get_by_label("检索内容").fill(text)
        page.get_by_role("button", name="查询").click()
        expect(page.locator("ul.hits li.empty")).to_be_visible()
        expect(page.get_by_label("检索内容")).to_have_value(text)

        response = page.goto(f"{desk.url}/datasets/persons?grid={text}&tags={text}")
        assert response is not None and response.status == 200
        page.get_by_label("检索内容").fill(text)
        page.get_by_role("button", name="筛选").click()
        expect(page.locator("p.count")).to_have_text("共 0 条")

    page.goto(f"{desk.url}/?q={person['name']}")
    page.locator("ul.hits a.hit").first.click()
    page.locator("details.reveal summary").click()
    page.get_by_label("查看理由").fill(HOSTILE[1])
    page.get_by_role("button", name="确认显示").click()
    expect(page.locator(".notice")).to_contain_text(HOSTILE[1])

    stranger = browser.new_context()
    try:
        login = stranger.new_page()
        login.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        login.goto(f"{desk.url}/login")
        login.get_by_label("用户名").fill(HOSTILE[0])
        login.get_by_label("密码").fill(HOSTILE[2])
        login.get_by_role("button", name="登录").click()
        expect(login.locator(".error")).to_have_text("用户名或密码错误")
        expect(login.get_by_label("用户名")).to_have_value(HOSTILE[0])
        log_in(login, desk, "director")
        login.goto(f"{desk.url}/audit?action=reveal")
        expect(login.locator("table.audit")).to_contain_text(HOSTILE[1])
    finally:
        stranger.close()
    assert dialogs == []
    assert world.persons.shape[0] > 0 and len(world.persons) == _count_persons(desk)


def _count_persons(desk: Desk) -> int:
    """The snapshot still holds everyone (no injected DROP or DELETE ran)."""
    engine = sa.create_engine(desk.settings.resolved_database_url)
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM snap_persons")) or 0


def test_forms_without_the_csrf_token_are_refused(page: Page, desk: Desk, world: World) -> None:
    person = only_in(world, MINE)
    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/?q={person['name']}")
    person_path = page.locator("ul.hits a.hit").first.get_attribute("href")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert person_path and token
    api = page.request  # the logged-in browser's cookies, without a form's hidden token
    for path, form in (
        (person_path, {"reason": "核对"}),
        (person_path, {"reason": "核对", "csrf": "forged"}),
        ("/datasets/persons/export", {}),
        ("/datasets/persons", {"reason": "核对"}),
        (f"/household/{person['household_no']}", {"reason": "核对"}),
        ("/logout", {}),
    ):
        response = api.post(desk.url + path, form=form)
        assert response.status == 403, path
        assert person["id_number"] not in response.text()
    accepted = api.post(desk.url + person_path, form={"reason": "核对", "csrf": token})
    assert accepted.status == 200 and person["id_number"] in accepted.text()

    anonymous = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        refused = anonymous.request.post(
            f"{desk.url}/login", form={"name": "director", "password": PASSWORD}, max_redirects=0
        )
        assert refused.status == 403 and "gh_session" not in str(refused.headers.get("set-cookie"))
    finally:
        anonymous.close()


def test_repeated_wrong_passwords_are_throttled(page: Page, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'harvest.db'}")
    app = create_app(settings)
    app.state.desk.staff.add("clerk", PASSWORD, role="staff", scope=MINE)
    with served(app) as url:
        desk = Desk(url, settings)
        for _ in range(settings.desk_login_failures):
            page.goto(f"{url}/login")
            page.get_by_label("用户名").fill("clerk")
            page.get_by_label("密码").fill("wrong-password")
            page.get_by_role("button", name="登录").click()
            expect(page.locator(".error")).to_have_text("用户名或密码错误")
        page.goto(f"{url}/login")
        page.get_by_label("用户名").fill("clerk")
        page.get_by_label("密码").fill(PASSWORD)
        with page.expect_response(
            lambda r: r.url.endswith("/login") and r.request.method == "POST"
        ) as answer:
            page.get_by_role("button", name="登录").click()
        assert answer.value.status == 429
        expect(page.locator(".error")).to_contain_text("登录失败次数过多")
        assert page.url.startswith(f"{desk.url}/login")


def test_lonely_elders_without_an_elderly_care_record(page: Page, desk: Desk, world: World) -> None:
    """The question the desk exists for: which 独居老人 of my community have no allowance record?"""
    people, elderly = world.persons, world.elderly
    alone = people[(people["community"] == MINE) & people["tags"].str.contains("独居老人")]
    cared = set(elderly.loc[elderly["community"] == MINE, "id_number"])
    wanted = alone[~alone["id_number"].isin(cared)]
    assert 0 < len(wanted) < len(alone)
    log_in(page, desk, "donghu_clerk")
    page.goto(f"{desk.url}/datasets/persons")
    page.get_by_label("标签").select_option("独居老人")
    page.get_by_label("未登记于").select_option(label="养老服务")
    page.get_by_role("button", name="筛选").click()
    expect(page.locator("p.count")).to_have_text(f"共 {len(wanted)} 条")
    masked = {number[:6] + "********" + number[-4:] for number in wanted["id_number"]}
    headers = page.locator("table.data thead th").all_inner_texts()
    column = headers.index("身份证号") + 1
    assert set(page.locator(f"table.data tbody td:nth-child({column})").all_inner_texts()) == masked
