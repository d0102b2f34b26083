"""Each system's page shape, scope rule and layout switch, seen through real Chromium."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from sandbox import Sandbox, SandboxSystem
from tests.sandbox_helpers import login

pytestmark = pytest.mark.browser


def _log_in_as(page: Page, system: SandboxSystem, community: str) -> str:
    account = system.account(community)
    login(page, system, account.username, account.password)
    expect(page.locator("#current-user")).to_be_visible()
    return account.username


def _column(page: Page, table: str, header: str) -> list[str]:
    headers = page.locator(f"{table} thead th").all_inner_texts()
    index = headers.index(header) + 1
    return page.locator(f"{table} tbody tr td:nth-child({index})").all_inner_texts()


def _communities(sandbox: Sandbox) -> tuple[str, str]:
    mine, other = (c.code for c in sandbox["population"].world.communities[:2])
    return mine, other


def test_population_numbered_pages_show_exactly_the_accounts_community(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["population"]
    mine, _ = _communities(sandbox)
    username = _log_in_as(page, system, mine)
    seen: list[str] = []
    page.goto(f"{system.url}/persons?size=100")
    while True:
        seen += _column(page, "table.persons", "身份证号")
        following = page.locator("ul.pagination li.next a")
        if following.count() == 0:
            break
        following.click()
        page.wait_for_load_state()
    truth = system.truth("persons", username)
    assert sorted(seen) == sorted(truth["id_number"])
    assert len(seen) == len(set(seen))


def test_population_search_form_filters_by_name(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["population"]
    mine, _ = _communities(sandbox)
    username = _log_in_as(page, system, mine)
    surname = system.truth("persons", username)["name"].str[0].value_counts().index[0]
    page.fill("input[name=name]", surname)
    page.click("#search-form button[type=submit]")
    page.wait_for_load_state()
    names = _column(page, "table.persons", "姓名")
    assert names and all(surname in name for name in names)
    expected = system.truth("persons", username)["name"].str.contains(surname).sum()
    expect(page.locator("#total")).to_have_text(str(expected))


def test_population_detail_and_household_pages_refuse_another_community(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["population"]
    mine, other = _communities(sandbox)
    username = _log_in_as(page, system, mine)
    own = system.truth("persons", username).iloc[0]
    page.goto(f"{system.url}/persons/{own['person_id']}")
    expect(page.locator("table.detail")).to_contain_text(own["id_number"])
    foreign = system.truth("persons", system.account(other).username).iloc[0]
    for path in (f"/persons/{foreign['person_id']}", f"/households/{foreign['household_no']}"):
        response = page.goto(f"{system.url}{path}")
        assert response is not None and response.status == 403
        expect(page.locator("#error-message")).to_contain_text("无权访问")
        assert foreign["id_number"] not in page.content()


def test_civil_spa_fills_its_table_from_the_json_api(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["civil"]
    mine, other = _communities(sandbox)
    username = _log_in_as(page, system, mine)
    truth = system.truth("elderly", username)
    expect(page.locator("#page-info")).to_contain_text(f"共 {len(truth)} 条")
    first = _column(page, "table.elderly", "档案编号")
    assert first == list(truth["archive_no"][:20])
    with page.expect_response(lambda r: "/api/elderly/list" in r.url and "pageNum=2" in r.url) as api:
        page.click("#next")
    assert api.value.json()["rows"][0]["archiveNo"] == truth["archive_no"].iloc[20]
    expect(page.locator("table.elderly tbody tr").first).to_contain_text(truth["archive_no"].iloc[20])

    every = page.request.get(f"{system.url}/api/elderly/list?pageNum=1&pageSize=100").json()
    pages = -(-every["total"] // 100)
    rows = [
        r
        for n in range(1, pages + 1)
        for r in page.request.get(f"{system.url}/api/elderly/list?pageNum={n}&pageSize=100").json()["rows"]
    ]
    assert sorted(r["idCard"] for r in rows) == sorted(truth["id_number"])

    foreign = system.truth("elderly", system.account(other).username).iloc[0]
    refused = page.request.get(f"{system.url}/api/elderly/{foreign['archive_no']}")
    assert refused.status == 403 and refused.json()["code"] == 403
    assert page.request.get(f"{system.url}/api/elderly/{truth['archive_no'].iloc[0]}").ok


def test_civil_api_answers_401_json_when_not_logged_in(page: Page, sandbox: Sandbox) -> None:
    response = page.request.get(f"{sandbox['civil'].url}/api/elderly/list")
    assert response.status == 401
    assert response.json()["code"] == 401


def test_market_load_more_and_the_xlsx_report_give_the_accounts_entities(
    page: Page, sandbox: Sandbox
) -> None:
    system = sandbox["market"]
    mine, other = _communities(sandbox)
    username = _log_in_as(page, system, mine)
    truth = system.truth("entities", username)
    cards = page.locator(".entity-card")
    while page.locator("#load-more").is_visible():
        before = cards.count()
        page.click("#load-more")
        expect(cards).not_to_have_count(before)
    expect(page.locator("#no-more")).to_be_visible()
    codes = [text for text in page.locator(".entity-card dd:nth-of-type(1)").all_inner_texts()]
    assert sorted(codes) == sorted(truth["uscc"])

    with page.expect_download() as download:
        page.click("#export")
    assert download.value.suggested_filename == "市场主体名录.xlsx"
    report = pd.read_excel(io.BytesIO(download.value.path().read_bytes()), dtype=str)
    assert sorted(report["统一社会信用代码"]) == sorted(truth["uscc"])

    foreign = system.truth("entities", system.account(other).username).iloc[0]
    response = page.goto(f"{system.url}/entities/{foreign['uscc']}")
    assert response is not None and response.status == 403


@pytest.mark.parametrize(
    ("code", "path", "headers", "renamed", "new_name"),
    [
        ("population", "/persons", "table.persons thead th", "身份证号", "公民身份号码"),
        ("civil", "/elderly", "table.elderly thead th", "身份证号", "证件号码"),
        ("market", "/entities", ".entity-card >> nth=0 >> dt", "主体名称", "企业名称"),
    ],
)
def test_layout_switch_renames_a_header_and_reorders_columns(
    page: Page, sandbox: Sandbox, code: str, path: str, headers: str, renamed: str, new_name: str
) -> None:
    system = sandbox[code]
    mine, _ = _communities(sandbox)
    _log_in_as(page, system, mine)
    before = page.locator(headers).all_inner_texts()
    system.switches.layout_changed = True
    page.goto(f"{system.url}{path}")
    after = page.locator(headers).all_inner_texts()
    assert renamed in before and renamed not in after and new_name in after
    assert [h for h in after if h != new_name] != [h for h in before if h != renamed]
