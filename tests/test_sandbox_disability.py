"""残疾人服务管理系统 behaves like an ASP.NET WebForms system: GBK pages named so only in a meta,
alert() login errors, a list inside an iframe paged only by postback (real Chromium, real HTTP)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Dialog, Frame, FrameLocator, Page, expect
from selectolax.lexbor import LexborHTMLParser

from robots import LayoutChanged
from robots import Page as ListPage
from sandbox import Sandbox, SandboxSystem
from sandbox._disability import COLUMNS, COLUMNS_CHANGED, MSG_EVENT_VALIDATION, MSG_VIEWSTATE, _records, pager
from sandbox._world import World
from tests.sandbox_helpers import captcha_answer

pytestmark = pytest.mark.browser
NEXT = "a:has-text('下一页')"
META = re.compile(rb'<meta http-equiv="Content-Type" content="text/html; charset=([\w-]+)" />')
# The WHATWG encoding labels: browsers decode a page labelled gb2312 or gbk with the GB18030 decoder.
# (Python's own gb2312 codec would not do: it reads the — placeholder, GBK's A1AA, as U+2015.)
CHINESE_LABELS = {"gb2312", "gbk", "gb18030"}


@pytest.fixture
def system(sandbox: Sandbox) -> SandboxSystem:
    return sandbox["disability"]


@pytest.fixture
def alerts(page: Page) -> list[str]:
    """The texts of the alert() dialogs the page raises, each accepted as a person would."""
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return seen


def _login(page: Page, system: SandboxSystem, username: str, password: str, captcha: str = "") -> None:
    page.goto(f"{system.url}/Login.aspx")
    page.fill("#txtUserName", username)
    page.fill("#txtPassword", password)
    if captcha:
        page.fill("#txtCode", captcha)
    page.click("#btnLogin")
    page.wait_for_load_state()


def _frame(page: Page) -> FrameLocator:
    return page.frame_locator("#mainFrame")


def _list_frame(page: Page) -> Frame:
    frame = page.frame(name="mainFrame")
    assert frame is not None, "no iframe named mainFrame"
    return frame


def _shown(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> list[dict[str, str]]:
    """``frame``'s records as the pages show them: 发证日期 as 20190615, no phone as —."""
    shown = frame.assign(
        issued=frame["issued"].str.replace("-", ""), guardian_phone=frame["guardian_phone"].fillna("—")
    )
    return [{column: row[column] for _, column in columns} for _, row in shown.iterrows()]


def _decode(body: bytes) -> str:
    """The page as a browser decodes it: by the charset its meta names (there is none in the header)."""
    match = META.search(body[:1024])
    assert match is not None, "no charset meta in the first 1024 bytes"
    label = match.group(1).decode().lower()
    return body.decode("gb18030" if label in CHINESE_LABELS else label)


def _hidden(html: str) -> dict[str, str]:
    tree = LexborHTMLParser(html)
    return {
        n.attributes["name"] or "": n.attributes.get("value") or "" for n in tree.css("input[type=hidden]")
    }


@pytest.fixture
def client(system: SandboxSystem) -> Iterator[httpx.Client]:
    """An httpx client logged in as the first account."""
    with _http_login(system, system.accounts[0].username) as logged_in:
        yield logged_in


@contextmanager
def _http_login(system: SandboxSystem, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.url) as client:
        form = _hidden(_decode(client.get("/Login.aspx").content))
        password = system.gate.accounts[username].password
        reply = client.post("/Login.aspx", data=form | {"txtUserName": username, "txtPassword": password})
        assert (reply.status_code, reply.headers["location"]) == (302, "/Default.aspx")
        yield client


def _rows(html: str, columns: list[tuple[str, str]] = COLUMNS) -> list[dict[str, str]]:
    return ListPage(html, "List.aspx").table("#gvList", columns={h: c for h, c in columns})


def _postback(client: httpx.Client, html: str, argument: str, **override: str) -> httpx.Response:
    form = _hidden(html) | {"__EVENTTARGET": "gvList", "__EVENTARGUMENT": argument} | override
    return client.post("/List.aspx", data=form)


def test_pages_are_gbk_and_only_the_meta_says_so(system: SandboxSystem, client: httpx.Client) -> None:
    # The login page first, from a browser without a session: a logged-in one would log out by visiting it.
    replies = [httpx.get(f"{system.url}/Login.aspx"), client.get("/Default.aspx"), client.get("/List.aspx")]
    for reply, text in zip(replies, ("用户名", "欢迎您", "残疾人证号"), strict=True):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/html"
        assert reply.content.count(b"charset") == 1
        # Decoded by the HTTP header alone (no charset: UTF-8), the Chinese is mojibake ...
        assert text not in reply.text and "\ufffd" in reply.text
        # ... and by the meta's charset it reads right.
        assert text in _decode(reply.content)
    username = system.accounts[0].username
    assert _rows(_decode(replies[-1].content)) == _shown(
        system.truth("disability", username).iloc[:10], COLUMNS
    )


def test_login_lands_on_the_frameset_as_the_account(page: Page, system: SandboxSystem) -> None:
    account = system.accounts[0]
    _login(page, system, account.username, account.password)
    assert urlsplit(page.url).path == "/Default.aspx"
    expect(page.locator("#lblUser")).to_have_text(f"欢迎您：{account.username}（{account.scope_name}）")
    expect(_frame(page).locator("#gvList")).to_be_visible()
    assert page.evaluate("document.characterSet") == "GBK"
    assert page.locator("a[href='Logout.aspx']").inner_text() == "退出"


def test_wrong_passwords_are_alerts_and_the_threshold_locks(
    page: Page, system: SandboxSystem, alerts: list[str]
) -> None:
    system.switches.lockout_threshold = 2
    account = system.accounts[1]
    for _ in range(2):
        _login(page, system, account.username, "wrong-password")
    assert alerts == ["用户名或密码错误！", "该用户已被锁定！"]
    assert "错误" not in page.inner_text("body")  # no error element: the dialog is all there is
    expect(page.locator("#txtUserName")).to_have_value(account.username)
    _login(page, system, account.username, account.password)  # locked means locked
    assert alerts[-1] == "该用户已被锁定！" and urlsplit(page.url).path == "/Login.aspx"
    assert system.gate.is_locked(account.username)
    assert system.gate.wrong_passwords(account.username) == 2


def test_the_captcha_shows_only_when_on_and_a_wrong_one_spends_no_password(
    page: Page, system: SandboxSystem, alerts: list[str]
) -> None:
    account = system.accounts[0]
    page.goto(f"{system.url}/Login.aspx")
    assert page.locator("#imgCode").count() == page.locator("#txtCode").count() == 0
    system.switches.captcha = True
    _login(page, system, account.username, account.password, captcha="????")
    assert alerts == ["验证码错误！"]
    assert system.gate.wrong_passwords(account.username) == 0
    expect(page.locator("img#imgCode[src='ValidateCode.aspx']")).to_be_visible()
    page.fill("#txtPassword", account.password)
    page.fill("#txtCode", captcha_answer(page, system))
    page.click("#btnLogin")
    expect(page.locator("#lblUser")).to_contain_text(account.username)
    assert alerts == ["验证码错误！"]


def test_event_validation_must_be_the_one_this_pre_login_session_was_given(system: SandboxSystem) -> None:
    account = system.accounts[0]
    with httpx.Client(base_url=system.url) as first, httpx.Client(base_url=system.url) as second:
        theirs = _hidden(_decode(first.get("/Login.aspx").content))
        second.get("/Login.aspx")
        credentials = {"txtUserName": account.username, "txtPassword": account.password}
        for validation in (theirs["__EVENTVALIDATION"], "", "not base64!"):
            reply = second.post("/Login.aspx", data=theirs | credentials | {"__EVENTVALIDATION": validation})
            assert reply.status_code == 403
            assert "alert('页面已过期，请刷新后重试！')" in _decode(reply.content)
    assert [a.outcome for a in system.gate.attempts] == ["bad_csrf"] * 3


def test_paging_by_clicking_postback_links_shows_exactly_the_accounts_records(
    page: Page, system: SandboxSystem
) -> None:
    account = system.account(system.world.communities[1].code)
    _login(page, system, account.username, account.password)
    frame = _frame(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "") if r.method == "POST" else None)
    seen: list[dict[str, str]] = []
    number = 1
    while True:
        expect(frame.locator("#lblCount")).to_contain_text(f"第 {number}/")
        rows = _rows(_list_frame(page).content())
        assert len(rows) == 10 or frame.locator(NEXT).count() == 0  # the pager row is no record
        seen += rows
        if frame.locator(NEXT).count() == 0:
            break
        frame.locator(NEXT).click()
        number += 1
    truth = system.truth("disability", account.username)
    assert number == -(-len(truth) // 10) > 2
    assert seen == _shown(truth, COLUMNS)
    assert _list_frame(page).url == f"{system.url}/List.aspx" and urlsplit(page.url).path == "/Default.aspx"
    assert len(posts) == number - 1
    assert all("__EVENTTARGET=gvList" in p and "__EVENTARGUMENT=Page%24Next" in p for p in posts)


def test_postbacks_need_this_sessions_view_state_and_a_rendered_argument(
    system: SandboxSystem, client: httpx.Client
) -> None:
    truth = _shown(system.truth("disability", system.accounts[0].username), COLUMNS)
    first = _decode(client.get("/List.aspx?page=2").content)
    assert _rows(first) == truth[:10]  # no page number in any URL: a GET is page 1
    second = _decode(_postback(client, first, "Page$2").content)
    assert _rows(second) == truth[10:20]
    assert _rows(_decode(_postback(client, second, "Page$Next").content)) == truth[20:30]
    assert _rows(_decode(_postback(client, first, "Page$Last").content)) == truth[-(len(truth) % 10 or 10) :]

    with _http_login(system, system.accounts[1].username) as other:
        foreign = _hidden(_decode(other.get("/List.aspx").content))
    refused = _postback(client, first, "Page$2", __VIEWSTATE=foreign["__VIEWSTATE"])
    assert refused.status_code == 500 and MSG_VIEWSTATE in _decode(refused.content)
    unrendered = _postback(client, first, "Page$99")  # page 1 draws no link to it
    assert unrendered.status_code == 500 and MSG_EVENT_VALIDATION in _decode(unrendered.content)

    with httpx.Client(base_url=system.url) as anonymous:
        reply = anonymous.post("/List.aspx", data=_hidden(first))
    assert (reply.status_code, reply.headers["location"]) == (302, "/Login.aspx?ReturnUrl=%2FList.aspx")


def test_the_pager_draws_blocks_of_ten_and_no_next_on_the_last_page() -> None:
    assert pager(1, 3) == [
        ("1", None),
        ("2", "Page$2"),
        ("3", "Page$3"),
        ("下一页", "Page$Next"),
        ("末页", "Page$Last"),
    ]
    middle = [text for text, _ in pager(12, 25)]
    assert middle == ["首页", "上一页", "...", *map(str, range(11, 21)), "...", "下一页", "末页"]
    assert pager(12, 25)[2] == ("...", "Page$10") and pager(12, 25)[-3] == ("...", "Page$21")
    assert [text for text, _ in pager(25, 25)] == ["首页", "上一页", "...", "21", "22", "23", "24", "25"]


def test_an_expired_session_sends_the_iframe_and_the_top_page_to_the_login_page(
    page: Page, system: SandboxSystem
) -> None:
    system.switches.idle_timeout_s = 0.5
    account = system.accounts[0]
    _login(page, system, account.username, account.password)
    expect(_frame(page).locator("#gvList")).to_be_visible()
    time.sleep(0.8)
    _frame(page).locator(NEXT).click()
    expect(_frame(page).locator("#txtUserName")).to_be_visible()
    inner = urlsplit(_list_frame(page).url)
    assert (inner.path, parse_qs(inner.query)) == ("/Login.aspx", {"ReturnUrl": ["/List.aspx"]})
    page.reload()
    assert urlsplit(page.url).path == "/Login.aspx"


def test_a_second_login_ends_the_first_session_inside_its_iframe(
    browser: Browser, system: SandboxSystem
) -> None:
    account = system.accounts[0]
    first, second = browser.new_context(), browser.new_context()
    try:
        old, new = first.new_page(), second.new_page()
        _login(old, system, account.username, account.password)
        expect(_frame(old).locator("#gvList")).to_be_visible()
        _login(new, system, account.username, account.password)
        _frame(old).locator(NEXT).click()
        expect(_frame(old).locator("#btnLogin")).to_be_visible()
        expect(_frame(new).locator("#gvList")).to_be_visible()
    finally:
        first.close()
        second.close()


def test_logout_ends_the_session(page: Page, system: SandboxSystem) -> None:
    account = system.accounts[0]
    _login(page, system, account.username, account.password)
    page.click("text=退出")
    assert urlsplit(page.url).path == "/Login.aspx"
    page.goto(f"{system.url}/Default.aspx")
    assert urlsplit(page.url).path == "/Login.aspx"


def test_the_detail_page_refuses_another_communitys_record(
    system: SandboxSystem, client: httpx.Client
) -> None:
    own = system.truth("disability", system.accounts[0].username).iloc[0]
    shown = _decode(client.get(f"/Detail.aspx?id={own['card_no']}").content)
    assert own["card_no"] in shown and own["name"] in shown
    foreign = system.truth("disability", system.accounts[1].username).iloc[0]
    refused = client.get(f"/Detail.aspx?id={foreign['card_no']}")
    assert refused.status_code == 403
    assert "无权访问" in _decode(refused.content) and foreign["id_number"] not in _decode(refused.content)
    assert client.get("/Detail.aspx?id=nothing").status_code == 404


def test_layout_changed_renames_the_card_number_and_reorders(
    system: SandboxSystem, client: httpx.Client
) -> None:
    system.switches.layout_changed = True
    html = _decode(client.get("/List.aspx").content)
    headers = [th.text() for th in LexborHTMLParser(html).css("#gvList th")]
    assert headers == ["序号", *(h for h, _ in COLUMNS_CHANGED), "操作"]
    assert "残疾人证号" not in headers
    with pytest.raises(LayoutChanged, match="残疾人证号"):
        _rows(html)
    truth = system.truth("disability", system.accounts[0].username).iloc[:10]
    assert _rows(html, COLUMNS_CHANGED) == _shown(truth, COLUMNS_CHANGED)


def test_the_records_are_deterministic_and_shaped_like_real_cards(
    world: World, system: SandboxSystem
) -> None:
    records = _records(world)
    pd.testing.assert_frame_equal(records, _records(world))
    assert records["card_no"].is_unique
    tagged = world.persons.loc[world.persons["tags"].str.contains("残疾"), "id_number"]
    assert set(tagged) < set(records["id_number"])  # everyone tagged 残疾, and some more
    categories = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"]
    grades = ["一级", "二级", "三级", "四级"]
    for _, card in records.iterrows():
        category, grade = int(card["card_no"][-2]), int(card["card_no"][-1])
        assert card["card_no"][:-2] == card["id_number"]
        assert (categories[category - 1], grades[grade - 1]) == (card["category"], card["grade"])
    assert records["guardian_phone"].isna().any() and records["guardian_phone"].notna().any()
    served = httpx.get(
        f"{system.url}/__sandbox__/truth/disability", params={"username": system.accounts[0].username}
    )
    truth = system.truth("disability", system.accounts[0].username).reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.DataFrame(served.json()), truth, check_dtype=False)
