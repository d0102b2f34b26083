"""The demo robot of 残疾人服务管理系统 harvests exactly each account's card holders through a real
Harvester: an alert()-only login door, a GBK list inside an iframe, paged only by postback (posted
by the demo robot without rendering; clicked in the frame by a rendered walk)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from connectors.sandbox_disability import disability
from robots import Walk, robot
from robots.sandbox_disability import Disabled, disabled
from sandbox import Sandbox
from sandbox._disability import PAGE_SIZE
from settings import Settings
from store import Store
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

pytestmark = pytest.mark.browser
ACCOUNTS = ("donghu", "xiyuan")
HOOKS: dict[int, Callable[[], object]] = {}  # row number → what happens to the system when the walk yields it


@robot(system=disability, record=Disabled, dataset="disability", name="t_disabled_hooked")
async def disabled_hooked(walk: Walk):
    """The demo walk; a test hook may change the system under it when it reaches a row."""
    read = 0
    async for row in disabled(walk):
        read += 1
        hook = HOOKS.pop(read, None)
        if hook is not None:
            hook()
        yield row


@robot(system=disability, record=Disabled, dataset="disability", name="t_disabled_rendered")
async def disabled_rendered(walk: Walk):
    """The list as a person's browser pages it: 下一页 clicked inside the frame of /Default.aspx."""
    read = 0
    pages = walk.follow("/Default.aspx", next="a:has-text('下一页')", render=True, frame="#mainFrame")
    async for page in pages:
        for row in page.table("#gvList", Disabled):
            read += 1
            hook = HOOKS.pop(read, None)
            if hook is not None:
                hook()
            yield row


@pytest.fixture(autouse=True)
def _no_leftover_hooks() -> Iterator[None]:
    yield
    HOOKS.clear()  # a failed test must not leave its hook to the next one


class EveryThird(random.Random):
    """The traffic middleware's fault draws, scripted: every third request is below any rate."""

    def __init__(self) -> None:
        super().__init__()
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return 0.0 if self.draws % 3 == 0 else 0.99


def _exactly_the_truth(store: Store, sandbox: Sandbox, accounts: tuple[str, ...]) -> None:
    system = sandbox["disability"]
    everything = snapshot(store, "disability")
    fields = [f for f in Disabled.model_fields if f != "community"]
    for scope in accounts:
        truth = system.truth("disability", system.account(scope).username)
        truth = truth.sort_values("card_no").reset_index(drop=True)
        got = everything[everything["scope"] == scope].reset_index(drop=True)
        assert len(got) == len(truth) > 2 * PAGE_SIZE, scope  # more than two pages of postbacks
        assert (got["community"] == scope).all()
        pd.testing.assert_frame_equal(_text(got[fields]), _text(truth[fields]), check_dtype=False)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    # fillna first: pandas 3 keeps a missing value missing through astype(str).
    return frame.astype(object).fillna("").astype(str).reset_index(drop=True)


@pytest.mark.parametrize("captcha", [False, True])
def test_the_demo_robot_harvests_exactly_the_truth_for_two_accounts(
    captcha: bool, settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    sandbox["disability"].switches.captcha = captcha
    reports = harvest(settings, store, vault, [("disabled", scope) for scope in ACCOUNTS])
    assert [(r.status, r.kind) for r in reports] == [("ok", None)] * 2, [r.message for r in reports]
    assert [r.logins for r in reports] == [1, 1]
    _exactly_the_truth(store, sandbox, ACCOUNTS)


def test_500s_while_walking_lose_nothing(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = sandbox["disability"]

    def faults() -> None:
        # Only once logged in: an unexplained 500 on a login POST ends a run by design (lockout safety).
        system.switches.fault_500_rate = 0.1
        monkeypatch.setattr(system.app, "rng", EveryThird())

    HOOKS[1] = faults
    (report,) = harvest(settings, store, vault, [("t_disabled_hooked", ACCOUNTS[1])])
    assert (report.status, report.kind) == ("ok", None), report.message
    assert not HOOKS, "the hook did not run"
    assert system.traffic.faults["500"] > 0
    assert report.records == len(system.truth("disability", system.account(ACCOUNTS[1]).username))
    _exactly_the_truth(store, sandbox, ACCOUNTS[1:])


@pytest.mark.parametrize(
    ("how", "walk"),
    [("expired", "t_disabled_hooked"), ("kicked", "t_disabled_hooked"), ("kicked", "t_disabled_rendered")],
)
def test_a_session_ended_mid_walk_costs_one_relogin_and_no_record(
    how: str, walk: str, settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    """Posted (the view state of the ended session is not sent again: the list is paged again from
    its first page) or clicked in the browser (the frame is paged back to where it was)."""
    system = sandbox["disability"]
    account = system.account(ACCOUNTS[0])

    def end() -> None:
        if how == "expired":
            system.gate.end_sessions(account.username, "expired")
        else:  # someone logs in with the same account elsewhere: the system ends our session
            session = system.gate.anonymous(None)
            system.gate.login(session, account.username, account.password, session.csrf, "")

    HOOKS[PAGE_SIZE + 1] = end  # once page 2 is read
    (report,) = harvest(settings, store, vault, [(walk, account.account)])
    assert (report.status, report.kind) == ("ok", None), report.message
    assert not HOOKS, "the hook did not run"
    assert report.logins == 2
    assert report.records == len(system.truth("disability", account.username))  # none twice, none skipped
    _exactly_the_truth(store, sandbox, ACCOUNTS[:1])
