"""The 社会救助 sandbox behaves like a layui admin: a scripted login with toasts, a table shell filled
from {code, msg, count, data}, and "not logged in" said inside an HTTP 200 (real Chromium, real HTTP)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect

from sandbox import Sandbox, SandboxSystem
from sandbox._assist import assistance
from tests.sandbox_helpers import captcha_answer

pytestmark = pytest.mark.browser
TOAST = ".layui-layer-msg .layui-layer-content"
SUBMIT = "[lay-submit][lay-filter=login]"
ROWS = "#assistTable + .layui-table-view .layui-table-body tbody tr"


def _login(page: Page, system: SandboxSystem, username: str, password: str) -> None:
    """Fill the layui form and click 登 入, waiting for the script's POST to be answered."""
    page.goto(f"{system.url}/user/login")
    page.fill("input[name=account]", username)
    page.fill("input[name=pwd]", password)
    with page.expect_response("**/user/doLogin"):
        page.click(SUBMIT)


def _logged_in(page: Page, system: SandboxSystem, username: str, password: str) -> None:
    """Log in and wait for the script to take us to the admin shell."""
    _login(page, system, username, password)
    page.wait_for_url("**/index")


def _last_toast(page: Page) -> str:
    return page.locator(TOAST).last.inner_text()


def _csrf(client: httpx.Client) -> str:
    """The CSRF token the login page hands this client's pre-login session."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/user/login").text)
    assert found is not None
    return found[1]


@contextmanager
def _client(system: SandboxSystem, username: str, password: str) -> Iterator[httpx.Client]:
    """An httpx client logged in the way the page's script does it (form-encoded works as well as JSON)."""
    with httpx.Client(base_url=system.url) as client:
        sent = {"account": username, "pwd": password, "csrf": _csrf(client)}
        reply = client.post("/user/doLogin", data=sent)
        assert reply.json()["code"] == 0, reply.text
        yield client


def _shown_rows(page: Page) -> list[dict[str, str]]:
    return page.locator(ROWS).evaluate_all(
        "trs => trs.map(tr => Object.fromEntries([...tr.cells].map(td => [td.dataset.field, td.innerText])))"
    )


def test_login_lands_on_the_admin_shell_as_the_account(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    account = system.accounts[0]
    page.goto(f"{system.url}/user/login")
    # The shape that defeats naive login code: no <form>, a button that is no submit, no #username.
    assert page.locator("form").count() == 0
    assert page.locator(SUBMIT).get_attribute("type") is None
    assert page.locator("#username, #password, #captcha").count() == 0
    _logged_in(page, system, account.username, account.password)
    expect(page.locator("cite.layui-nav-username")).to_have_text(account.username)
    expect(page.locator("a[href='/user/logout']")).to_have_text("退出")
    page.click("text=退出")
    page.wait_for_url("**/user/login**")
    page.goto(f"{system.url}/assist/list")
    assert "/user/login" in page.url


def test_wrong_passwords_are_toasts_until_the_account_locks(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    account = system.accounts[1]
    threshold = system.switches.lockout_threshold
    texts = []
    for _ in range(threshold):
        _login(page, system, account.username, "wrong-password")
        texts.append(_last_toast(page))
        assert page.url.endswith("/user/login")  # a failure never navigates
    assert texts[:-1] == ["账号或密码不正确"] * (threshold - 1)
    assert texts[-1] == "账号已被锁定，请联系管理员解锁"
    # The toast is transient, as layer.msg's are.
    expect(page.locator(TOAST)).to_have_count(0, timeout=5_000)
    _login(page, system, account.username, account.password)
    assert _last_toast(page) == "账号已被锁定，请联系管理员解锁"
    assert system.gate.is_locked(account.username)
    assert system.gate.wrong_passwords(account.username) == threshold


def test_a_wrong_captcha_is_refused_counts_no_password_and_draws_a_new_one(
    page: Page, sandbox: Sandbox
) -> None:
    system = sandbox["assist"]
    system.switches.captcha = True
    account = system.accounts[0]
    page.goto(f"{system.url}/user/login")
    expect(page.locator("img[src^='/user/vercode']")).to_be_visible()
    captcha_answer(page, system)  # an image was drawn for this session
    page.fill("input[name=account]", account.username)
    page.fill("input[name=pwd]", account.password)
    page.fill("input[name=vercode]", "????")
    with page.expect_response("**/user/vercode?t=*"):
        page.click(SUBMIT)
    assert _last_toast(page) == "图形验证码错误"
    assert system.gate.wrong_passwords(account.username) == 0
    # The miss spent the captcha (single use); the page drew a new one, which the right answer passes.
    page.fill("input[name=vercode]", captcha_answer(page, system).lower())
    page.click(SUBMIT)
    page.wait_for_url("**/index")
    expect(page.locator("cite.layui-nav-username")).to_have_text(account.username)


def test_the_list_shell_is_filled_from_the_api_page_by_page_and_equals_the_truth(
    page: Page, sandbox: Sandbox
) -> None:
    system = sandbox["assist"]
    account = system.accounts[1]
    truth = system.truth("assistance", account.username)
    _logged_in(page, system, account.username, account.password)
    page.click("text=救助对象管理")
    expect(page.locator(".layui-laypage-count")).to_have_text(f"共 {len(truth)} 条")
    shown = _shown_rows(page)
    while page.locator(".layui-laypage-next[data-page]").count():
        page.click(".layui-laypage-next")
        expect(page.locator(".layui-laypage-curr em").last).to_have_text(str(len(shown) // 20 + 1))
        shown += _shown_rows(page)
    assert len(truth) > 20  # more than one page, so the pager was walked
    got = pd.DataFrame(shown)
    assert list(got["certNo"]) == list(truth["cert_no"])
    assert list(got["idCard"]) == list(truth["id_number"])
    assert [Decimal(v.replace(",", "")) for v in got["monthlyAmount"]] == list(truth["monthly_amount"])
    assert list(got["approvedAt"].str[:10]) == list(truth["approved_at"])
    assert [None if v == "暂无" else v for v in got["phone"]] == [
        None if pd.isna(v) else v for v in truth["phone"]
    ]
    assert got["phone"].eq("暂无").any()  # the placeholder is exercised
    for column, field in [("members", "members"), ("category", "category"), ("status", "status")]:
        assert list(got[field]) == [str(v) for v in truth[column]]


def test_an_expired_session_is_code_1001_in_a_200_and_the_page_goes_to_login(
    page: Page, sandbox: Sandbox
) -> None:
    system = sandbox["assist"]
    account = system.accounts[1]
    _logged_in(page, system, account.username, account.password)
    page.goto(f"{system.url}/assist/list")
    expect(page.locator(ROWS)).to_have_count(20)
    system.gate.end_sessions(account.username)  # as an idle timeout would
    reply = page.request.get(f"{system.url}/assist/api/list?page=2&limit=20")
    assert (reply.status, reply.json()) == (200, {"code": 1001, "msg": "登录超时，请重新登录"})
    # The table's next page meets the same answer: a toast, then the script sends us to log in.
    page.click(".layui-laypage-next")
    expect(page.locator(TOAST)).to_have_text("登录超时，请重新登录")
    page.wait_for_url("**/user/login**")


def test_an_idle_session_expires_to_the_login_page(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    system.switches.idle_timeout_s = 0.5
    account = system.accounts[0]
    _logged_in(page, system, account.username, account.password)
    time.sleep(0.8)
    page.goto(f"{system.url}/assist/list")
    assert "/user/login" in page.url and "reason=expired" in page.url
    expect(page.locator(TOAST)).to_have_text("会话已超时，请重新登录")


def test_a_second_login_kicks_the_first_session(browser: Browser, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    account = system.accounts[0]
    first, second = browser.new_context(), browser.new_context()
    try:
        old, new = first.new_page(), second.new_page()
        _logged_in(old, system, account.username, account.password)
        _logged_in(new, system, account.username, account.password)
        old.goto(f"{system.url}/index")
        assert "/user/login" in old.url and "reason=kicked" in old.url
        reply = old.request.get(f"{system.url}/assist/api/list")
        assert (reply.status, reply.json()["code"]) == (200, 1001)
        new.goto(f"{system.url}/index")
        expect(new.locator("cite.layui-nav-username")).to_have_text(account.username)
    finally:
        first.close()
        second.close()


def test_the_detail_api_refuses_another_communitys_record(sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    mine, theirs = system.accounts[0], system.accounts[1]
    own = system.truth("assistance", mine.username).iloc[0]
    other = system.truth("assistance", theirs.username).iloc[0]
    with _client(system, mine.username, mine.password) as client:
        got = client.get("/assist/api/detail", params={"certNo": own["cert_no"]}).json()
        assert (got["code"], got["data"]["idCard"]) == (0, own["id_number"])
        refused = client.get("/assist/api/detail", params={"certNo": other["cert_no"]})
        assert (refused.status_code, refused.json()) == (200, {"code": 403, "msg": "无权查看"})
        listed = client.get("/assist/api/list", params={"page": 1, "limit": 50}).json()
        assert other["cert_no"] not in {row["certNo"] for row in listed["data"]}


def test_layout_changed_renames_id_card_in_the_api_and_on_the_page(page: Page, sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    system.switches.layout_changed = True
    account = system.accounts[0]
    _logged_in(page, system, account.username, account.password)
    page.goto(f"{system.url}/assist/list")
    headers = page.locator(".layui-table-header th").all_inner_texts()
    assert "证件号" in headers and "身份证号" not in headers
    assert headers.index("证件号") == 1
    row = page.request.get(f"{system.url}/assist/api/list?page=1&limit=10").json()["data"][0]
    assert "sfzh" in row and "idCard" not in row


def test_the_login_post_answers_code_1_in_a_200_and_login_fault_hits_it(sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    account = system.accounts[2]
    with httpx.Client(base_url=system.url) as client:
        sent = {"account": account.username, "pwd": "nope", "csrf": _csrf(client)}
        reply = client.post("/user/doLogin", json=sent)
        assert (reply.status_code, reply.json()) == (200, {"code": 1, "msg": "账号或密码不正确"})
        system.switches.login_fault = "500"
        assert client.post("/user/doLogin", json=sent).status_code == 500
    assert system.gate.wrong_passwords(account.username) == 2  # the faulty answer still counted one


def test_the_truth_endpoint_serves_the_clean_frame(sandbox: Sandbox) -> None:
    system = sandbox["assist"]
    account = system.accounts[0]
    served = httpx.get(
        f"{system.url}/__sandbox__/truth/assistance", params={"username": account.username}
    ).json()
    truth = system.truth("assistance", account.username)
    assert [r["cert_no"] for r in served] == list(truth["cert_no"])
    assert all(re.fullmatch(r"\d+\.\d\d", r["monthly_amount"]) for r in served)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["approved_at"]) for r in served)


def test_the_dataset_is_deterministic_with_a_unique_key(sandbox: Sandbox) -> None:
    world = sandbox["assist"].world
    frame = assistance(world)
    pd.testing.assert_frame_equal(frame, assistance(world))
    assert frame["cert_no"].is_unique and frame["id_number"].is_unique
    assert set(frame["category"]) == {"城市低保", "农村低保", "特困供养"}
    dibao = world.persons.loc[world.persons["tags"].str.contains("低保"), "id_number"]
    assert set(dibao) <= set(frame["id_number"])  # every person the register tags 低保, and a few more
    assert len(frame) > len(dibao)
