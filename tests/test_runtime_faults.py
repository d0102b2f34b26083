"""A walk survives what networks and systems do: 5xx, drops, slow pages, 429, ended sessions."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from connectors import Politeness
from connectors.sandbox import population
from robots import Walk, robot
from robots.sandbox_population import PAGER, Person
from sandbox import Sandbox
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
POLITE = Politeness(concurrency=3, rate=20, retries=8)
HOOKS: dict[int, object] = {}  # page number → what happens to the session when the walk reaches it


# A system this flaky locks after five wrong passwords, not three: room for the login POSTs
# that a 500 or a drop leaves unanswered (the session spends at most three of them).
@robot(
    system=dataclasses.replace(population, politeness=POLITE, lockout_threshold=5),
    record=Person,
    dataset="persons",
    name="t_pages20",
)
async def small_pages(walk: Walk):
    """Persons 20 to a page, fetched a few at a time; a test hook may end the session mid-walk."""
    async for page in walk.pages("/persons?size=20&page={n}", last=PAGER):
        hook = HOOKS.pop(page.number or 0, None)
        if callable(hook):
            hook()
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}


@robot(
    system=dataclasses.replace(population, politeness=Politeness(retries=2)),
    record=Person,
    dataset="persons",
    name="t_impatient",
)
async def impatient(walk: Walk):
    """Gives up on a failing system after two retries, so that the test is quick."""
    async for page in walk.pages("/persons?size=100&page={n}"):
        for row in page.table("table.persons", Person):
            yield row | {"community": walk.scope}


def _all_there(store: Store, sandbox: Sandbox, scope: str, records: int) -> None:
    truth = sandbox["population"].truth("persons", sandbox["population"].account(scope).username)
    got = snapshot(store, "persons", scope)
    assert records == len(truth)  # rows the walk yielded: none twice, none skipped
    assert sorted(got["id_number"]) == sorted(truth["id_number"])


def test_injected_500s_drops_slow_pages_and_429s_lose_nothing_and_stay_polite(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["population"]
    sw = system.switches
    sw.fault_500_rate, sw.fault_drop_rate, sw.fault_slow_rate, sw.slow_seconds = 0.1, 0.03, 0.1, 0.3
    # Far below our 20/s, from the first list page on: the gate halves its pace on the injected
    # 500s too and must still meet the limit (429 with Retry-After) before it has backed off that
    # far. Not before: a 429 on the login POST is the system saying the account is locked.
    HOOKS[1] = lambda: setattr(sw, "rate_limit_per_s", 3)
    sw.lockout_threshold = 5

    (report,) = harvest(settings, store, vault, [("t_pages20", "donghu")])

    assert report.status == "ok", report.message
    assert not HOOKS, "the hook did not run"
    _all_there(store, sandbox, "donghu", report.records)
    assert system.traffic.faults["500"] and system.traffic.faults["429"] and system.traffic.faults["slow"]
    assert system.traffic.max_in_flight <= POLITE.concurrency + 1  # +1: the redirect after the login form
    starts = sorted(r.started for r in system.traffic.requests)
    busiest = max(
        sum(1 for _ in itertools.takewhile(lambda t, s=s: t < s + 1, starts[i:]))
        for i, s in enumerate(starts)
    )
    assert busiest <= POLITE.rate + 2


@pytest.mark.parametrize("how", ["expired", "kicked"])
def test_a_session_ended_mid_walk_costs_one_relogin_and_no_record(
    how: str, settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["population"]
    account = system.account("xiyuan")
    if how == "expired":
        HOOKS[4] = lambda: system.gate.end_sessions(account.username, "expired")
    else:  # someone logs in with the same account elsewhere: the system ends our session

        def intruder() -> None:
            session = system.gate.anonymous(None)
            system.gate.login(session, account.username, account.password, session.csrf, "")

        HOOKS[4] = intruder

    (report,) = harvest(settings, store, vault, [("t_pages20", "xiyuan")])

    assert report.status == "ok", report.message
    assert not HOOKS, "the hook did not run"
    assert report.logins == 2
    ours = [e for e in system.gate.events if e.username == account.username and e.event == "login"]
    assert len(ours) == (2 if how == "expired" else 3)
    _all_there(store, sandbox, "xiyuan", report.records)


def test_a_dead_system_ends_the_run_system_unavailable_with_the_snapshot_kept(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    (good,) = harvest(settings, store, vault, [("persons", "nanshan")])
    before = snapshot(store, "persons")
    sandbox["population"].switches.fault_500_rate = 1.0
    (report,) = harvest(settings, store, vault, [("t_impatient", "nanshan")])
    assert (report.status, report.kind, report.exit_code) == ("failed", "system_unavailable", 6)
    assert "仍未应答" in report.message
    assert snapshot(store, "persons").equals(before)
    assert good.status == "ok"


def test_every_relogin_gets_its_own_captcha_attempts(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["population"]
    system.switches.captcha = True
    username = system.account("nanshan").username
    for page in (3, 6, 9):  # three ended sessions: four logins, each through a captcha
        HOOKS[page] = lambda: system.gate.end_sessions(username, "expired")
    settings = settings.model_copy(update={"captcha_attempts": 2})

    (report,) = harvest(settings, store, vault, [("t_pages20", "nanshan")])

    assert report.status == "ok", report.message
    assert report.logins == 4 and not HOOKS
    _all_there(store, sandbox, "nanshan", report.records)
