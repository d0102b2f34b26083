"""Each way of walking a system (rendered pages, next links, load more, captured XHR) gets every record."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import async_playwright

from connectors import Polite, Session, SolverChain, launch_browser
from connectors.sandbox import civil, market, population
from robots import Walk, robot
from robots._page import rename
from robots.runtime import discover, run_blocking
from robots.sandbox_civil import ElderlyCare
from robots.sandbox_market import MarketEntity
from robots.sandbox_population import PAGER, Person
from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
HOOKS: dict[str, object] = {}

Household = discover()["households"].record  # declared in robots/sandbox_households.toml


@robot(system=population, record=Person, dataset="persons", name="t_rendered")
async def rendered(walk: Walk):
    """Persons from pages rendered in Chromium, as a person's browser shows them."""
    async for page in walk.pages("/persons?size=50&page={n}", last=PAGER, render=True):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}


@robot(system=population, record=Household, dataset="households", name="t_follow")
async def follow(walk: Walk):
    """Households by following the 下一页 link."""
    async for page in walk.follow("/households?size=20", next="li.next a"):
        for row in page.table("table.households", Household):
            yield row | {"community": walk.scope}


@robot(system=market, record=MarketEntity, dataset="entities", name="t_load_more")
async def load_more(walk: Walk):
    """Market entities from the card list, clicking 加载更多 until it is gone."""
    batches = 0
    async for page in walk.load_more("/entities", item=".entity-card", button="#load-more"):
        batches += 1
        if batches == 2 and "load_more" in HOOKS:
            HOOKS.pop("load_more")()  # type: ignore[operator]
        for row in page.records(".entity-card", MarketEntity):
            yield row | {"community": walk.scope}


@robot(system=civil, record=ElderlyCare, dataset="elderly", name="t_capture")
async def capture(walk: Walk):
    """The first page of elderly records, as the page's own script fetched it."""
    body = await walk.capture_json("/elderly", "/api/elderly/list")
    for item in body["rows"]:
        yield rename(item, ElderlyCare, "/api/elderly/list")


def _keys(sandbox: Sandbox, system: str, dataset: str, scope: str, key: str) -> list[str]:
    return sorted(sandbox[system].truth(dataset, sandbox[system].account(scope).username)[key])


def test_rendered_pages_in_recycled_contexts_keep_one_login(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    settings = settings.model_copy(update={"context_recycle_pages": 2})
    (report,) = harvest(settings, store, vault, [("t_rendered", "donghu")])
    assert report.status == "ok", report.message
    assert report.pages >= 6 and report.logins == 1
    assert sorted(snapshot(store, "persons")["id_number"]) == _keys(
        sandbox, "population", "persons", "donghu", "id_number"
    )


def test_following_next_links_reads_every_page(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    (report,) = harvest(settings, store, vault, [("t_follow", "xiyuan")])
    assert report.status == "ok", report.message
    truth = _keys(sandbox, "population", "households", "xiyuan", "household_no")
    assert report.records == len(truth) and report.pages == -(-len(truth) // 20)
    assert sorted(snapshot(store, "households")["household_no"]) == truth


def test_load_more_resumes_after_a_lost_session_without_repeats(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["market"]
    system.switches.cards_per_batch = 3
    username = system.account("nanshan").username
    # The session ends when the second batch is read: a third must be left to load, or the walk may
    # end (the button hidden) before it notices, and whether it noticed would depend on timing.
    assert len(_keys(sandbox, "market", "entities", "nanshan", "uscc")) > 2 * system.switches.cards_per_batch
    HOOKS["load_more"] = lambda: system.gate.end_sessions(username, "expired")
    (report,) = harvest(settings, store, vault, [("t_load_more", "nanshan")])
    assert report.status == "ok", report.message
    assert "load_more" not in HOOKS and report.logins == 2
    truth = _keys(sandbox, "market", "entities", "nanshan", "uscc")
    assert report.records == len(truth)
    assert sorted(snapshot(store, "entities")["uscc"]) == truth


def test_capture_json_reads_what_the_page_script_loaded(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    (report,) = harvest(settings, store, vault, [("t_capture", "donghu")])
    assert report.status == "ok", report.message
    first_page = _keys(sandbox, "civil", "elderly", "donghu", "archive_no")
    assert report.records == 20 and set(snapshot(store, "elderly")["archive_no"]) <= set(first_page)


@pytest.mark.parametrize(("allow", "loaded"), [(frozenset(), False), (frozenset({"image"}), True)])
def test_images_are_blocked_unless_the_robot_asks_for_them(
    allow: frozenset[str], loaded: bool, settings: Settings, sandbox: Sandbox
) -> None:
    system = sandbox["population"]

    async def go() -> None:
        async with async_playwright() as playwright:
            browser = await launch_browser(playwright, settings)
            declared = dataclasses.replace(population, base_url=system.url)
            session = Session(
                browser,
                declared,
                lambda: None,
                polite=Polite(declared.politeness),
                solver=SolverChain(),
                allow=allow,
            )
            session._context = await session._new_context(None)  # no login needed to load a picture
            page = await session.page()
            await page.set_content(f'<img src="{system.url}/captcha.png?probe=1">')
            await page.wait_for_load_state("networkidle")
            await browser.close()

    run_blocking(go)
    probes = [r for r in system.traffic.requests if r.path == "/captcha.png"]
    assert bool(probes) is loaded
