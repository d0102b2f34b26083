"""Reveal grants in real Chromium: a reveal is one POST answered by a GET, audited once per page,
carried by the revealed page's links, and refused (masked, with a notice) everywhere else."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from desk._grants import LIFETIME_S
from sandbox import World
from store import Snapshot
from tests.desk_helpers import PASSWORD, seeded_desk, served
from tests.test_desk_pages import MASKED_ID, MINE, Desk, log_in, only_in

pytestmark = pytest.mark.browser

ENDED = "完整信息的显示已结束"
CLERK = "donghu_clerk"


@dataclass(frozen=True)
class Site:
    desk: Desk
    app: FastAPI

    @property
    def url(self) -> str:
        return self.desk.url

    def audits(self, action: str) -> list[tuple[str | None, str | None, dict[str, object]]]:
        """Every ``action`` entry of the clerk, oldest first, as (dataset, reason, detail)."""
        entries, _ = Snapshot(self.app.state.desk.snapshot.engine).audits(
            limit=100_000, actor=CLERK, action=action
        )
        return [(e.dataset, e.reason, json.loads(e.detail or "{}")) for e in reversed(entries)]


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    app = seeded_desk(world, tmp_path_factory.mktemp("desk-reveal"))
    app.state.desk.staff.add(CLERK, PASSWORD, role="staff", scope=MINE)
    app.state.desk.staff.add("donghu_colleague", PASSWORD, role="staff", scope=MINE)
    with served(app) as url:
        yield Site(Desk(url, app.state.desk.settings), app)


def reveal(page: Page, reason: str) -> None:
    page.locator("details.reveal summary").click()
    page.get_by_label("查看理由").fill(reason)
    page.get_by_role("button", name="确认显示").click()
    expect(page).to_have_url(re.compile(r"[?&]grant="))


def one_page_read(new: list[tuple[str | None, str | None, dict[str, object]]], reason: str) -> None:
    """``new`` audit entries are those of one revealed page read: each of its reads once, with the reason."""
    assert new and all(entry[1] == reason for entry in new)
    reads = [(dataset, json.dumps(detail, sort_keys=True)) for dataset, _, detail in new]
    assert len(reads) == len(set(reads)), reads


def test_a_reveal_is_one_post_then_gets_audited_once(page: Page, site: Site, world: World) -> None:
    person = only_in(world, MINE)
    log_in(page, site.desk, CLERK)
    page.goto(f"{site.url}/?q={person['name']}")
    page.locator("ul.hits a.hit").first.click()
    expect(page.locator("main")).not_to_contain_text(person["id_number"])
    methods: list[str] = []
    page.on("request", lambda r: methods.append(r.method) if r.is_navigation_request() else None)
    before = len(site.audits("reveal"))

    reveal(page, "入户核查需联系本人")
    expect(page.locator("main")).to_contain_text(person["id_number"])
    expect(page.locator(".notice")).to_contain_text("前有效")
    revealed_url = page.url
    audited = site.audits("reveal")
    one_page_read(audited[before:], "入户核查需联系本人")

    page.go_back()
    expect(page.locator("main")).not_to_contain_text(person["id_number"])
    for move in (page.go_forward, page.reload, page.reload):
        move()
        assert page.url == revealed_url
        expect(page.locator("header .who")).to_contain_text(CLERK)  # the desk's page, not Chromium's
        expect(page.locator("main")).to_contain_text(person["id_number"])
    assert methods.count("POST") == 1 and len(methods) >= 5, methods
    assert len(site.audits("reveal")) == len(audited)

    page.get_by_role("link", name="恢复脱敏显示").click()
    assert "grant=" not in page.url
    expect(page.locator("main")).not_to_contain_text(person["id_number"])
    expect(page.locator("main")).not_to_contain_text(ENDED)


def test_a_revealed_list_carries_its_grant_to_its_links_and_export(
    page: Page, site: Site, world: World
) -> None:
    log_in(page, site.desk, CLERK)
    page.goto(f"{site.url}/datasets/persons")
    before = len(site.audits("reveal"))
    reveal(page, "走访核对名单")
    column = page.locator("table.data thead th").all_inner_texts().index("身份证号") + 1
    ids = page.locator(f"table.data tbody tr td:nth-child({column})").all_inner_texts()
    mine = set(world.persons.loc[world.persons["community"] == MINE, "id_number"])
    assert ids and set(ids) <= mine
    assert len(site.audits("reveal")) == before + 1
    links = page.locator("a[href^='/person/'], a[href^='/household/'], nav.pager a")
    hrefs = [link.get_attribute("href") or "" for link in links.all()]
    assert len(hrefs) > 2 * len(ids) and all("grant=" in href for href in hrefs)

    export = page.locator("form[action*='/export']")
    expect(export.locator("input[name=grant]")).to_have_count(1)
    expect(export.locator("input[name=reason]")).to_have_count(0)
    with page.expect_download() as download:
        export.get_by_role("button").click()
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c}
    assert set(ids) <= cells and not any(MASKED_ID.fullmatch(c) for c in cells)
    dataset, reason, detail = site.audits("export")[-1]
    assert (dataset, reason, detail["revealed"]) == ("persons", "走访核对名单", True)

    counted = len(site.audits("reveal"))
    page.locator("table.data a[href^='/person/']").first.click()
    expect(page.locator("main")).to_contain_text(ids[0])
    expect(page.locator("details.reveal")).to_have_count(0)
    after_person = site.audits("reveal")
    one_page_read(after_person[counted:], "走访核对名单")
    page.reload()
    page.get_by_role("link", name="同户人员").first.click()
    expect(page.locator("main")).to_contain_text(ids[0])
    expect(page.locator("details.reveal")).to_have_count(0)
    after_household = site.audits("reveal")
    one_page_read(after_household[len(after_person) :], "走访核对名单")

    page.go_back()
    page.go_back()  # the list again, read under its grant before
    page.get_by_role("link", name="下一页").click()
    expect(page.locator("main")).not_to_contain_text(ids[0])
    expect(page.locator(".notice")).to_contain_text("走访核对名单")
    page.reload()
    expect(page.locator("details.reveal")).to_have_count(0)
    assert len(site.audits("reveal")) == len(after_household) + 1


def test_a_grant_shows_masked_for_anyone_anywhere_else_or_later(
    page: Page, browser: Browser, site: Site, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    person, other = world.persons[world.persons["community"] == MINE].iloc[[3, 4]].itertuples()
    log_in(page, site.desk, CLERK)
    page.goto(f"{site.url}/?q={other.id_number}")
    other_path = page.locator("ul.hits a.hit").first.get_attribute("href")
    page.goto(f"{site.url}/?q={person.id_number}")
    page.locator("ul.hits a.hit").first.click()
    reveal(page, "核对联系方式")
    granted = page.url
    token = granted.split("grant=")[1]
    counted = len(site.audits("reveal"))

    def masked(where: Page, url: str) -> None:
        response = where.goto(url)
        assert response is not None and response.status == 200, url
        expect(where.locator(".notice.ended")).to_contain_text("请重新填写理由")
        expect(where.locator("details.reveal")).to_have_count(1)
        assert person.id_number not in where.content() and other.id_number not in where.content()

    masked(page, f"{site.url}{other_path}?grant={token}")  # a page the grant does not cover
    masked(page, f"{site.url}{other_path}?grant=not-a-grant")
    for name in ("donghu_colleague", CLERK):  # another user; the same user in another session
        context = browser.new_context()
        try:
            elsewhere = context.new_page()
            log_in(elsewhere, site.desk, name)
            masked(elsewhere, granted)
        finally:
            context.close()
    page.goto(granted)
    expect(page.locator("main")).to_contain_text(person.id_number)  # still live where it was given
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    export = f"{site.url}/datasets/persons/export"
    refused = page.request.post(export, form={"csrf": csrf, "grant": token})  # a person's grant
    assert refused.status == 400 and "重新填写理由" in refused.text()

    grants = site.app.state.desk.grants
    monkeypatch.setattr(grants, "clock", lambda: time.time() + LIFETIME_S + 1)
    masked(page, granted)
    assert len(site.audits("reveal")) == counted
