"""The 基本公共卫生服务管理系统 sandbox: its own login door, captcha, 0-based pager and grouped table."""

from __future__ import annotations

import io
import random
import re
import string
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from selectolax.lexbor import LexborHTMLParser

from sandbox import CAPTCHA_STYLES, Sandbox, SandboxSystem
from sandbox._captcha import HEALTH_ALPHABET, health_captcha, new_captcha
from tests.sandbox_helpers import captcha_answer

pytestmark = pytest.mark.browser
LIST = "/admin/sign/list"


@pytest.fixture
def health(sandbox: Sandbox) -> SandboxSystem:
    return sandbox["health"]


def _browser_login(page: Page, system: SandboxSystem, username: str, password: str, captcha: str = "") -> int:
    """Fill and submit the login form as a person would; the HTTP status of the login POST."""
    page.goto(f"{system.url}/admin/login")
    page.fill("#loginName", username)
    page.fill("#loginPwd", password)
    if captcha:
        page.fill("#verifyCode", captcha)
    with page.expect_response(lambda r: r.url.endswith("/admin/doLogin")) as posted:
        page.click("input[type=submit]")
    page.wait_for_load_state()
    return posted.value.status


def _client(system: SandboxSystem) -> httpx.Client:
    return httpx.Client(base_url=system.url, follow_redirects=False)


def _post_login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    form = LexborHTMLParser(client.get("/admin/login").text)
    token = form.css_first("input[name=token]").attributes["value"]
    return client.post("/admin/doLogin", data={"loginName": username, "loginPwd": password, "token": token})


@pytest.fixture
def client(health: SandboxSystem) -> Iterator[httpx.Client]:
    """Logged in as the first community's account."""
    account = health.accounts[0]
    with _client(health) as http:
        assert _post_login(http, account.username, account.password).headers["location"] == "/admin/index"
        yield http


def _tip(html: str) -> str:
    return LexborHTMLParser(html).css_first("p.login-tip").text(strip=True)


def _table(html: str) -> tuple[list[str], list[dict[str, str]]]:
    """The second header row and the body rows (签约编号 from the leading <th>, hidden id left out)."""
    tree = LexborHTMLParser(html)
    table = tree.css_first("table.table-list")
    headers = [th.text(strip=True) for th in table.css("thead tr")[1].css("th")]
    rows = []
    for tr in table.css("tbody tr"):
        cells = tr.css("td")
        if len(cells) == 1:
            continue
        visible = [
            td.text(strip=True) for td in cells if "display:none" not in (td.attributes.get("style") or "")
        ]
        rows.append(
            {"签约编号": tr.css_first("th a").text(strip=True)} | dict(zip(headers, visible, strict=False))
        )
    return headers, rows


def _pager(html: str) -> dict[str, str]:
    """Each pager link's label and the pageNo its href carries."""
    links = LexborHTMLParser(html).css(".pagination a")
    return {a.text(strip=True): re.search(r"pageNo=(-?\d+)", a.attributes["href"] or "")[1] for a in links}


def _shown(truth: pd.DataFrame) -> pd.DataFrame:
    """The truth in the page's own forms (what a reader of the page sees)."""
    return pd.DataFrame(
        {
            "签约编号": truth["sign_no"],
            "姓名": truth["name"],
            "身份证号": truth["id_number"],
            "性别": truth["gender"],
            "出生日期": [f"{int(y)}年{int(m)}月{int(d)}日" for y, m, d in truth["birth_date"].str.split("-")],
            "联系电话": truth["phone"].replace("", "-"),
            "签约医生": truth["doctor"],
            "签约团队": truth["team"],
            "签约日期": [f"{int(y)}/{int(m)}/{int(d)}" for y, m, d in truth["sign_date"].str.split("-")],
            "服务包费用": [f"￥{fee:,.2f}" for fee in truth["fee"]],
            "状态": truth["status"],
        }
    ).reset_index(drop=True)


# ---- the login door, in Chromium


def test_login_lands_on_the_index_with_the_user_name_and_a_logout_link(
    page: Page, health: SandboxSystem
) -> None:
    account = health.accounts[0]
    page.goto(f"{health.url}/admin/sign/list?pageNo=0&pageSize=20")
    assert page.url.endswith("/admin/login")  # not logged in: no timeout notice
    expect(page.locator("input[type=submit]")).to_have_value("登 录")
    assert page.locator("#username, #password, button").count() == 0
    assert _browser_login(page, health, account.username, account.password) == 302
    assert page.url.endswith("/admin/index")
    expect(page.locator(".user-name")).to_contain_text(account.username)
    expect(page.locator(".user-name")).to_contain_text(account.scope_name)
    page.once("dialog", lambda dialog: dialog.accept())  # 确定要注销吗？
    page.click("a[href='/admin/logout']")
    page.wait_for_url("**/admin/login")
    page.goto(f"{health.url}/admin/index")
    assert page.url.endswith("/admin/login")


def test_wrong_passwords_count_down_then_freeze_the_account_with_429(
    page: Page, health: SandboxSystem
) -> None:
    account = health.accounts[1]
    threshold = health.switches.lockout_threshold
    answers = []
    for _ in range(threshold):
        status = _browser_login(page, health, account.username, "wrong-password")
        answers.append((status, page.locator("p.login-tip").inner_text()))
    assert answers[:-1] == [
        (200, f"登录名或登录密码不正确，您还有{threshold - n}次机会") for n in range(1, threshold)
    ]
    frozen = f"该账户因多次登录失败已被冻结，请{health.switches.lockout_minutes:g}分钟后重试"
    assert answers[-1] == (429, frozen)
    # Frozen means frozen: the right password gets the same answer.
    assert _browser_login(page, health, account.username, account.password) == 429
    expect(page.locator("p.login-tip")).to_have_text(frozen)
    assert health.gate.is_locked(account.username)
    assert health.gate.wrong_passwords(account.username) == threshold


def test_with_captcha_on_a_wrong_captcha_is_refused_and_spends_no_password(
    page: Page, health: SandboxSystem
) -> None:
    account = health.accounts[0]
    page.goto(f"{health.url}/admin/login")
    assert page.locator("#verifyImg, #verifyCode").count() == 0  # the captcha is off by default
    health.switches.captcha = True
    page.goto(f"{health.url}/admin/login")
    expect(page.locator("#verifyImg")).to_be_visible()
    assert (page.get_attribute("#verifyImg", "src") or "").startswith("/admin/verifyCode?")

    assert _browser_login(page, health, account.username, account.password, captcha="?????") == 200
    expect(page.locator("p.login-tip")).to_have_text("校验码输入有误")
    assert health.gate.wrong_passwords(account.username) == 0

    page.fill("#loginPwd", "wrong-password")
    page.fill("#verifyCode", captcha_answer(page, health))
    page.click("input[type=submit]")
    expect(page.locator("p.login-tip")).to_contain_text("登录名或登录密码不正确")

    page.fill("#loginPwd", account.password)
    page.fill("#verifyCode", captcha_answer(page, health).upper())
    page.click("input[type=submit]")
    expect(page.locator(".user-name")).to_contain_text(account.username)
    assert health.gate.wrong_passwords(account.username) == 1


def test_an_idle_session_expires_to_the_login_page_with_the_timeout_flag(
    page: Page, health: SandboxSystem
) -> None:
    health.switches.idle_timeout_s = 0.5
    account = health.accounts[0]
    _browser_login(page, health, account.username, account.password)
    expect(page.locator(".user-name")).to_be_visible()
    time.sleep(0.8)
    page.goto(f"{health.url}{LIST}?pageNo=0&pageSize=20")
    assert page.url.endswith("/admin/login?timeout=1")
    expect(page.locator("p.login-tip")).to_contain_text("登录超时")


# ---- the login door over HTTP


def test_a_second_login_kicks_the_first_session_to_the_login_page(health: SandboxSystem) -> None:
    account = health.accounts[0]
    with _client(health) as first, _client(health) as second:
        _post_login(first, account.username, account.password)
        assert first.get("/admin/index").status_code == 200
        _post_login(second, account.username, account.password)
        kicked = first.get(f"{LIST}?pageNo=0&pageSize=20")
        assert (kicked.status_code, kicked.headers["location"]) == (302, "/admin/login?timeout=1")
        assert second.get("/admin/index").status_code == 200


def test_the_login_fault_switch_hits_the_systems_own_login_post(health: SandboxSystem) -> None:
    account = health.accounts[0]
    health.switches.login_fault = "500"
    with _client(health) as http:
        assert _post_login(http, account.username, "wrong-password").status_code == 500
    assert health.gate.wrong_passwords(account.username) == 1  # judged, then failed


def test_unfamiliar_texts_replace_the_systems_own_wording(health: SandboxSystem) -> None:
    health.switches.unfamiliar_texts = True
    with _client(health) as http:
        assert _tip(_post_login(http, health.accounts[0].username, "wrong").text).startswith("核验未通过")


def test_the_health_captcha_style_is_its_own_and_mostly_readable() -> None:
    assert CAPTCHA_STYLES["health"] is health_captcha
    assert CAPTCHA_STYLES["classic"] is new_captcha
    assert set(HEALTH_ALPHABET) <= set(string.ascii_lowercase + string.digits)
    assert not set("0o1lij") & set(HEALTH_ALPHABET)
    captchas = [health_captcha(random.Random(seed)) for seed in range(40)]
    assert all(len(c.answer) == 5 and set(c.answer) <= set(HEALTH_ALPHABET) for c in captchas)
    answers = "".join(c.answer for c in captchas)
    assert set(answers) & set(string.digits) and set(answers) & set(string.ascii_lowercase)
    with Image.open(io.BytesIO(captchas[0].png)) as image:
        assert (image.format, image.size) == ("PNG", (100, 32))
    assert health_captcha(random.Random(3)) == health_captcha(random.Random(3))
    assert captchas[0].matches(captchas[0].answer.upper())
    ddddocr = pytest.importorskip("ddddocr")
    ocr = ddddocr.DdddOcr(show_ad=False)
    read = sum(c.matches(ocr.classification(c.png)) for c in captchas)
    assert read >= 24, f"ddddocr read only {read} of {len(captchas)} captchas"


def test_the_login_page_serves_captchas_in_the_health_style(health: SandboxSystem) -> None:
    health.switches.captcha = True
    with _client(health) as http:
        http.get("/admin/login")
        image = http.get("/admin/verifyCode", params={"r": "1"})
        assert image.headers["content-type"] == "image/png"
        session = health.gate.sessions[http.cookies[health.spec.cookie_name]]
    assert session.captcha is not None and session.captcha.png == image.content
    assert len(session.captcha.answer) == 5 and set(session.captcha.answer) <= set(HEALTH_ALPHABET)


# ---- the list, the detail page and the truth


def test_list_pages_count_from_zero_and_together_show_exactly_the_truth(
    client: httpx.Client, health: SandboxSystem
) -> None:
    truth = health.truth("family_doctor", health.accounts[0].username)
    first = client.get(f"{LIST}?pageNo=0&pageSize=10")
    pager = _pager(first.text)
    last = -(-len(truth) // 10) - 1
    assert last + 1 > 7  # more pages than any window shows, or the test proves nothing
    assert (
        LexborHTMLParser(first.text).css_first(".pagination .total").text()
        == f"共 {len(truth)} 条记录，每页 10 条"
    )
    numbers = [label for label in pager if label.isdigit()]
    assert numbers == ["2", "3", "4", "5"] and pager["2"] == "1"  # 1-based labels, 0-based hrefs
    assert (pager["首页"], pager["下一页"], pager["末页"]) == ("0", "1", str(last))
    rows = []
    for n in range(last + 1):
        reply = client.get(LIST, params={"pageNo": n, "pageSize": 10})
        assert reply.status_code == 200
        rows += _table(reply.text)[1]
        if 0 < n < last:
            assert _pager(reply.text)["上一页"] == str(n - 1) and _pager(reply.text)["下一页"] == str(n + 1)
    middle = _pager(client.get(LIST, params={"pageNo": 6, "pageSize": 10}).text)
    assert [label for label in middle if label.isdigit()] == [
        "5",
        "6",
        "8",
        "9",
    ]  # the current one is no link
    got = pd.DataFrame(rows)
    pd.testing.assert_frame_equal(got, _shown(truth))
    assert (got["联系电话"] == "-").any() and got["服务包费用"].str.contains(",").any()


def test_the_table_has_a_grouped_header_a_th_key_cell_and_a_hidden_id(
    client: httpx.Client, health: SandboxSystem
) -> None:
    tree = LexborHTMLParser(client.get(f"{LIST}?pageNo=0&pageSize=20").text)
    top, second = tree.css("table.table-list thead tr")
    groups = {th.text(strip=True): th.attributes.get("colspan") for th in top.css("th")}
    assert groups["基本信息"] == "4" and groups["签约信息"] == "6"
    assert [th.text(strip=True) for th in second.css("th")][:4] == ["姓名", "身份证号", "性别", "出生日期"]
    row = tree.css_first("table.table-list tbody tr")
    lead = row.css_first("th a")
    own = health.truth("family_doctor", health.accounts[0].username).iloc[0]
    assert (
        lead.text() == own["sign_no"] and lead.attributes["href"] == f"/admin/sign/detail?id={own['sign_id']}"
    )
    hidden = row.css_first("td")
    assert hidden.attributes["style"] == "display:none" and hidden.text() == str(own["sign_id"])


def test_a_page_out_of_range_redirects_to_the_first_page(client: httpx.Client, health: SandboxSystem) -> None:
    total = len(health.truth("family_doctor", health.accounts[0].username))
    for number in (-(-total // 20), -1, 10**6):
        reply = client.get(LIST, params={"pageNo": number, "pageSize": 20})
        assert (reply.status_code, reply.headers["location"]) == (302, f"{LIST}?pageNo=0&pageSize=20")


def test_an_empty_list_shows_one_spanning_row(client: httpx.Client) -> None:
    reply = client.get(LIST, params={"pageNo": 0, "pageSize": 20, "name": "查无此人"})
    tree = LexborHTMLParser(reply.text)
    (row,) = tree.css("table.table-list tbody tr")
    assert row.css_first("td").attributes["colspan"] == "13" and row.text(strip=True) == "暂无数据"
    assert tree.css_first(".pagination .total b").text() == "0"
    assert _pager(reply.text)["末页"] == "0"


def test_the_detail_page_refuses_another_communitys_record(
    client: httpx.Client, health: SandboxSystem
) -> None:
    own = health.truth("family_doctor", health.accounts[0].username).iloc[0]
    detail = client.get("/admin/sign/detail", params={"id": own["sign_id"]})
    assert detail.status_code == 200 and own["id_number"] in detail.text and own["sign_no"] in detail.text
    foreign = health.truth("family_doctor", health.accounts[1].username).iloc[0]
    refused = client.get("/admin/sign/detail", params={"id": foreign["sign_id"]})
    assert refused.status_code == 403
    assert "无权访问" in LexborHTMLParser(refused.text).css_first(".error-msg").text()
    assert foreign["id_number"] not in refused.text and "alert-error" not in refused.text
    assert client.get("/admin/sign/detail", params={"id": "x"}).status_code == 404


def test_layout_changed_renames_the_id_number_header_and_reorders(
    client: httpx.Client, health: SandboxSystem
) -> None:
    before, rows_before = _table(client.get(f"{LIST}?pageNo=0&pageSize=20").text)
    health.switches.layout_changed = True
    after, rows_after = _table(client.get(f"{LIST}?pageNo=0&pageSize=20").text)
    assert "身份证号" in before and "身份证号" not in after and "证件号码" in after
    assert [h for h in after if h != "证件号码"] != [h for h in before if h != "身份证号"]
    assert [r["证件号码"] for r in rows_after] == [r["身份证号"] for r in rows_before]


def test_the_truth_endpoint_serves_the_clean_frame(health: SandboxSystem) -> None:
    account = health.accounts[0]
    with _client(health) as http:
        served = http.get("/__sandbox__/truth/family_doctor", params={"username": account.username}).json()
    truth = health.truth("family_doctor", account.username)
    assert len(served) == len(truth) > 0
    assert {r["sign_no"] for r in served} == set(truth["sign_no"])
    assert all(r["community"] == account.scope for r in served)
    first = served[0]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["birth_date"]) and Decimal(first["fee"]) > 0
    everyone = pd.concat([health.truth("family_doctor", a.username) for a in health.accounts])
    assert everyone["sign_no"].is_unique
    assert 0.3 < len(everyone) / len(health.world.persons) < 0.5
