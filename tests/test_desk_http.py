"""The desk over HTTP: headers, cookies, redirects, refusals and what reaches the logs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from loguru import logger

from desk import create_app
from sandbox import World
from settings import load_settings
from store import Snapshot
from tests.desk_helpers import PASSWORD, seeded_desk

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def app(world: World, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("desk-http")
    desk = seeded_desk(world, data)
    desk.state.desk.staff.add("clerk", PASSWORD, role="staff", scope="donghu")
    desk.state.desk.staff.add("chief", PASSWORD, role="admin", scope=None)
    return desk


def client(app: FastAPI, name: str = "clerk", *, base_url: str = "http://testserver") -> TestClient:
    browser = TestClient(app, base_url=base_url, follow_redirects=False)
    form = browser.get("/login")
    answer = browser.post(
        "/login", data={"name": name, "password": PASSWORD, "csrf": CSRF.findall(form.text)[0]}
    )
    assert answer.status_code == 303, answer.text
    return browser


def csrf_of(page: str) -> str:
    return CSRF.findall(page)[0]


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


def test_every_page_carries_the_protective_headers(app: FastAPI) -> None:
    browser = client(app)
    for path in ("/login", "/", "/?q=王", "/datasets", "/datasets/persons", "/nope"):
        headers = browser.get(path).headers
        assert headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(app: FastAPI, scheme: str) -> None:
    browser = TestClient(app, base_url=f"{scheme}://testserver", follow_redirects=False)
    form = browser.get("/login")
    answer = browser.post("/login", data={"name": "clerk", "password": PASSWORD, "csrf": csrf_of(form.text)})
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("gh_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert ("Secure" in cookie) == (scheme == "https")


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:1"]
)
def test_login_only_returns_to_a_page_of_this_site(app: FastAPI, target: str) -> None:
    browser = TestClient(app, follow_redirects=False)
    form = browser.get("/login", params={"next": target})
    data = {"name": "clerk", "password": PASSWORD, "csrf": csrf_of(form.text), "next": target}
    assert browser.post("/login", data=data).headers["location"] == "/"


def test_login_returns_to_the_page_asked_for(app: FastAPI) -> None:
    browser = TestClient(app, follow_redirects=False)
    assert browser.get("/datasets").headers["location"] == "/login?next=/datasets"
    form = browser.get("/login", params={"next": "/datasets"})
    data = {"name": "clerk", "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/datasets"}
    assert browser.post("/login", data=data).headers["location"] == "/datasets"
    assert "数据更新于" not in form.text  # what was harvested when is for staff only
    assert re.search(r"人口信息数据更新于 \d\d-\d\d \d\d:\d\d（北京时间）", browser.get("/datasets").text)


def test_forged_links_unknown_pages_and_the_audit_page_for_staff_are_refused(
    app: FastAPI, world: World
) -> None:
    browser = client(app)
    assert browser.get("/person/not-a-token").status_code == 404
    page = browser.get("/", params={"q": world.persons["name"].iloc[0]}).text
    token = re.findall(r"/person/([\w-]+)", page)[0]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert browser.get(f"/person/{tampered}").status_code == 404
    assert browser.get("/datasets/no_such_dataset").status_code == 404
    audit = browser.get("/audit")
    assert audit.status_code == 403 and "只有管理员" in audit.text
    assert client(app, "chief").get("/audit").status_code == 200


def test_a_reveal_without_a_reason_shows_nothing_and_is_not_audited(app: FastAPI, world: World) -> None:
    browser = client(app, base_url="http://testserver")
    person = world.persons[world.persons["community"] == "donghu"].iloc[0]
    page = browser.get("/", params={"q": person["id_number"]}).text
    token = re.findall(r"/person/([\w-]+)", page)[0]
    before = Snapshot(app.state.desk.snapshot.engine).audits(action="reveal")[1]
    refused = browser.post(f"/person/{token}", data={"csrf": csrf_of(page), "reason": " "})
    assert refused.status_code == 400 and person["id_number"] not in refused.text
    assert Snapshot(app.state.desk.snapshot.engine).audits(action="reveal")[1] == before


def test_links_seal_the_id_number(app: FastAPI, world: World) -> None:
    browser = client(app)
    person = world.persons[world.persons["community"] == "donghu"].iloc[0]
    pages = [browser.get("/", params={"q": person["name"]}).text for _ in range(2)]
    first, second = (re.findall(r"/person/([\w-]+)", page)[0] for page in pages)
    assert first != second  # a fresh nonce each time: a link says nothing about who it is
    assert person["id_number"] not in first and person["id_number"][-6:] not in first
    assert person["name"][0] in browser.get(f"/person/{second}").text


def test_logs_hold_no_personal_data_or_secrets(app: FastAPI, world: World, logs: list[str]) -> None:
    person = world.persons[world.persons["community"] == "donghu"].iloc[1]
    browser = client(app)
    page = browser.get("/", params={"q": person["id_number"]}).text
    token = re.findall(r"/person/([\w-]+)", page)[0]
    revealed = browser.post(
        f"/person/{token}", data={"csrf": csrf_of(page), "reason": "核对"}, follow_redirects=True
    )
    assert person["id_number"] in revealed.text
    grant = revealed.url.params["grant"]
    browser.get("/", params={"q": person["phone"]})
    browser.post("/datasets/persons/export", data={"csrf": csrf_of(page)})
    text = "\n".join(logs)
    assert "desk GET /" in text  # the request lines were captured
    secrets = (PASSWORD, browser.cookies.get("gh_session"), csrf_of(page), grant)
    for secret in (person["id_number"], person["phone"], person["name"], *secrets):
        assert secret and secret not in text


def test_a_logged_out_session_is_dead(app: FastAPI) -> None:
    browser = client(app)
    page = browser.get("/").text
    old = browser.cookies.get("gh_session")
    assert browser.post("/logout", data={"csrf": csrf_of(page)}).status_code == 303
    stale = TestClient(app, follow_redirects=False, cookies={"gh_session": old or ""})
    assert stale.get("/").headers["location"].startswith("/login")


def test_the_desk_starts_on_an_empty_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'harvest.db'}")
    app = create_app(settings)
    app.state.desk.staff.add("clerk", PASSWORD, role="staff", scope="donghu")
    browser = client(app)
    assert "还没有采集到任何数据" in browser.get("/datasets").text
    assert "没有找到匹配的人员" in browser.get("/", params={"q": "王伟"}).text
    assert (tmp_path / "desk.key").stat().st_mode & 0o777 == 0o600


def test_the_audit_page_masks_what_was_revealed(app: FastAPI, world: World) -> None:
    person = world.persons[world.persons["community"] == "donghu"].iloc[2]
    browser = client(app)
    page = browser.get("/datasets/persons", params={"q": person["id_number"]}).text
    revealed = browser.post(
        "/datasets/persons",
        params={"q": person["id_number"]},
        data={"csrf": csrf_of(page), "reason": "核对"},
        follow_redirects=True,
    )
    assert person["id_number"] in revealed.text
    audit = client(app, "chief").get("/audit", params={"actor": "clerk", "action": "reveal"}).text
    assert person["id_number"][:6] + "********" + person["id_number"][-4:] in audit
    assert person["id_number"] not in audit


@pytest.mark.parametrize(
    ("method", "path", "fields"),
    [
        ("GET", "/?q=ab%00cd", None),
        ("GET", "/?q=%00", None),  # today: everyone in scope
        ("GET", "/datasets/persons?q=%E7%8E%8B%0D%0A", None),
        ("GET", "/datasets/persons?grid=%1B%5B2J", None),
        ("GET", "/person/abc%00def", None),
        ("GET", "/household/%7F", None),
        ("POST", "/datasets/persons", {"reason": "核对\x00", "csrf": "from-the-page"}),
        ("POST", "/login", {"name": "clerk\x00", "password": PASSWORD, "csrf": "x"}),
        (
            "POST",
            "/login",
            {"name": "clerk", "password": PASSWORD, "csrf": "x", "next": "/\r\nSet-Cookie: a=b"},
        ),
    ],
)
def test_control_characters_are_refused_with_400_and_nothing_of_them_logged(
    app: FastAPI, logs: list[str], method: str, path: str, fields: dict[str, str] | None
) -> None:
    browser = client(app)
    if fields is not None and "csrf" in fields and fields["csrf"] == "from-the-page":
        fields = {**fields, "csrf": csrf_of(browser.get("/").text)}
    logs.clear()
    answer = browser.request(method, path, data=fields)
    assert answer.status_code == 400 and "控制字符" in answer.text
    assert answer.headers["cache-control"] == "no-store"  # a refusal is a page like every other
    assert len(logs) == 1 and re.fullmatch(rf"desk {method} - 400 \d+ ms\s*", logs[0])  # no path, no value


def test_a_pre_login_token_the_client_chose_is_refused(app: FastAPI) -> None:
    chosen = "attacker-chose-this-token-0123456789"
    browser = TestClient(app, follow_redirects=False, cookies={"gh_pre": chosen})
    form = browser.get("/login")
    assert csrf_of(form.text) != chosen  # the desk issues its own, whatever the browser holds
    forged = browser.post("/login", data={"name": "clerk", "password": PASSWORD, "csrf": chosen})
    assert forged.status_code == 403 and "gh_session" not in forged.headers.get("set-cookie", "")
    issued = csrf_of(form.text)
    browser.cookies.set("gh_pre", issued)
    assert (
        browser.post("/login", data={"name": "clerk", "password": PASSWORD, "csrf": issued}).status_code
        == 303
    )


def test_a_person_link_does_not_pass_for_a_pre_login_token(app: FastAPI, world: World) -> None:
    person = world.persons[world.persons["community"] == "donghu"].iloc[3]
    page = client(app).get("/", params={"q": person["name"]}).text
    link = re.findall(r"/person/([\w-]+)", page)[0]  # sealed with the same key
    browser = TestClient(app, follow_redirects=False, cookies={"gh_pre": link})
    answer = browser.post("/login", data={"name": "clerk", "password": PASSWORD, "csrf": link})
    assert answer.status_code == 403


def test_a_throttled_login_answers_429_with_retry_after(app: FastAPI) -> None:
    browser = TestClient(app, follow_redirects=False)
    for attempt in range(5):
        form = browser.get("/login")
        data = {"name": "temp_worker", "password": f"guess-{attempt}", "csrf": csrf_of(form.text)}
        assert browser.post("/login", data=data).status_code == 401
    form = browser.get("/login")
    locked = browser.post("/login", data={"name": "temp_worker", "password": "x", "csrf": csrf_of(form.text)})
    assert locked.status_code == 429 and 14 * 60 < int(locked.headers["retry-after"]) <= 15 * 60
    assert "请 15 分钟后再试" in locked.text


def test_a_bug_is_one_log_line_without_its_message(
    tmp_path: Path, world: World, logs: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    desk = seeded_desk(world, tmp_path)
    desk.state.desk.staff.add("clerk", PASSWORD, role="staff", scope="donghu")
    with desk.state.desk.snapshot.engine.begin() as conn:  # a table lost under a running desk
        conn.exec_driver_sql("ALTER TABLE snap_persons RENAME COLUMN name TO name_lost")
    person = world.persons[world.persons["community"] == "donghu"].iloc[4]
    browser = client(desk)
    browser = TestClient(desk, follow_redirects=False, raise_server_exceptions=False, cookies=browser.cookies)
    answer = browser.get("/", params={"q": person["name"]})
    assert answer.status_code >= 500 and person["name"] not in answer.text and "Traceback" not in answer.text
    captured = capfd.readouterr()
    text = "\n".join([*logs, captured.out, captured.err])
    assert f"desk GET / {answer.status_code}" in text and "desk GET / failed: " in text
    assert "message withheld" in text and "Traceback" not in text
    assert person["name"] not in text and "name_lost" not in text  # the message stays out
