"""Chromium runs while a session logs in or renders, not while a fast-path walk reads pages."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import pytest

from connectors import Chromium, owned_browsers, start_playwright
from connectors.sandbox import population
from robots import Walk, robot
from robots.runtime import Harvester, RobotSpec, RunReport, discover, registered, run_blocking
from robots.sandbox_population import PAGER, Person
from sandbox import Sandbox
from settings import Settings
from store import Store
from vault import Vault

pytestmark = pytest.mark.browser


@robot(system=population, record=Person, dataset="persons", name="t_persons_rendered")
def persons_rendered(walk: Walk):
    return walk.pages("/persons?size=100&page={n}", last=PAGER, render=True).table("table.persons", Person)


@dataclass
class Watch:
    """At every page the walk reads: is Chromium running, and what the sandbox should do now."""

    harvester: Harvester | None = None
    at_page: dict[int, object] = field(default_factory=dict)
    running: list[bool] = field(default_factory=list)

    def started(self, key: str, report: RunReport) -> None:
        pass

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        if pages and self.harvester is not None:
            self.running.append(self.harvester.chromium.running)
            action = self.at_page.pop(len(self.running), None)
            if callable(action):
                action()

    def finished(self, key: str, report: RunReport) -> None:
        pass


def _run(
    settings: Settings,
    store: Store,
    vault: Vault,
    robot: str | RobotSpec,
    watch: Watch,
    *,
    warm: bool = False,
) -> tuple[RunReport, int]:
    discover()

    async def go() -> tuple[RunReport, int]:
        chromium = None
        if warm:  # as `harvest run` does: Chromium started early, for the login that usually comes
            chromium = Chromium(await start_playwright(), settings)
            chromium.warm()
        async with Harvester(settings, store, vault, hooks=[watch], chromium=chromium) as harvester:
            watch.harvester = harvester
            spec = registered()[robot] if isinstance(robot, str) else robot
            report = await harvester.run(spec, "donghu")
            return report, harvester.chromium.launches

    return run_blocking(go)


def _our_browsers() -> list[int]:
    return [pid for pid, owner in owned_browsers().items() if owner == os.getpid()]


def test_a_fast_path_walk_reads_without_chromium_and_a_saved_session_needs_none(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    first = Watch()
    report, launches = _run(settings, store, vault, "persons", first)
    assert report.status == "ok" and report.logins == 1, report.message
    assert launches == 1 and first.running and not any(first.running)
    assert not _our_browsers()
    # Read as the browser read: a system that ties its session to the user agent keeps it.
    agents = {r.user_agent for r in sandbox["population"].traffic.requests}
    assert len(agents) == 1 and "Chrome/" in agents.pop()

    again = Watch()
    report, launches = _run(settings, store, vault, "persons", again)  # the saved session
    assert report.status == "ok" and report.logins == 0, report.message
    assert launches == 0 and again.running and not any(again.running)

    warmed = Watch()
    report, launches = _run(settings, store, vault, "persons", warmed, warm=True)
    assert report.status == "ok" and report.logins == 0, report.message
    assert launches == 1 and warmed.running and not any(warmed.running)  # closed once the session held


@pytest.mark.parametrize("replay", [True, False])
def test_a_relogin_mid_walk_is_replayed_or_brings_chromium_back_and_gives_it_back(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, replay: bool
) -> None:
    system = sandbox["population"]
    username = system.account("donghu").username
    spec = registered()["persons"]
    login = dataclasses.replace(spec.system.login, replay=replay)
    robot = dataclasses.replace(spec, system=dataclasses.replace(spec.system, login=login))
    watch = Watch(at_page={2: lambda: system.gate.end_sessions(username, "expired")})
    report, launches = _run(settings, store, vault, robot, watch)

    assert report.status == "ok" and report.logins == 2, report.message
    assert not watch.at_page, "the session was never ended"
    # The first login showed how the form posts: the second is sent over HTTP, unless declared not to.
    assert launches == (1 if replay else 2) and not any(watch.running)
    assert report.records == report.new > 0 and report.kind is None


def test_a_rendering_robot_keeps_its_browser_context_until_the_run_ends(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    watch = Watch()
    report, launches = _run(settings, store, vault, "t_persons_rendered", watch)
    assert report.status == "ok", report.message
    assert launches == 1 and watch.running and all(watch.running[1:])
