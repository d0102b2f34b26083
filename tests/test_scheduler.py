"""The scheduler on compressed time, with real Chromium, the sandbox and a local alert receiver."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from alerts import dingtalk_sign
from connectors import Politeness, owned_browsers
from connectors.sandbox import civil
from robots import Walk, robot
from robots.runtime import discover
from robots.sandbox_civil import ElderlyCare
from sandbox import Sandbox
from scheduler import HarvestScheduler, SchedulerBusy
from settings import Settings, load_settings
from store import Run, Store, make_engine
from tests.runtime_helpers import harvest, snapshot
from tests.scheduler_helpers import Receiver, running, wait_for
from vault import Vault

pytestmark = pytest.mark.browser
ELDERLY = {"elderly": discover()["elderly"]}


@robot(
    system=dataclasses.replace(civil, politeness=Politeness(retries=1)),
    record=ElderlyCare,
    dataset="elderly",
    name="t_elderly_quick",
)
async def quick(walk: Walk):
    """The demo elderly robot, but giving up on a failing system after one retry."""
    async for rows in walk.api_pages("/api/elderly/list", size=100, fields=ElderlyCare):
        for row in rows:
            yield row | {"community": walk.scope}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def on_database(database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings on ``database_url`` (SQLite or PostgreSQL): the job store, the scheduler's
    lease, the jobs' state and the runs all live there."""
    monkeypatch.setenv("HARVEST_DATABASE_URL", database_url)
    return load_settings()


def _compressed(settings: Settings, receiver: Receiver, **update: object) -> Settings:
    return settings.model_copy(
        update={"schedule_jitter_s": 0, "retry_base_s": 1.0, "alert_webhook_url": receiver.url, **update}
    )


def _runs(store: Store, robot_name: str | None = None) -> list[Run]:
    with Session(store.engine) as session:
        runs = session.exec(select(Run).order_by(Run.started_at))  # type: ignore[arg-type]
        return [r for r in runs if robot_name is None or r.robot == robot_name]


def _alerts(receiver: Receiver, kind: str) -> list[dict]:
    return [body for _, body in receiver.posts if body.get("kind") == kind]


def test_jobs_fire_on_their_cron_one_session_per_account_within_the_systems_limit(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, receiver: Receiver
) -> None:
    robots = {name: discover()[name] for name in ("persons", "households")}
    fast = _compressed(
        settings, receiver, schedules={"persons": "*/3 * * * * *", "households": "*/3 * * * * *"}
    )
    with running(fast, robots) as daemon:
        wait_for(lambda: len([r for r in _runs(store) if r.status == "ok"]) >= 12, "two rounds of six runs")
    assert len(daemon.jobs) == 6  # two robots × three accounts
    runs = [r for r in _runs(store) if r.finished_at is not None]
    for account in ("donghu", "xiyuan", "nanshan"):  # two robots of one account never overlap
        mine = sorted((r.started_at, r.finished_at) for r in runs if r.account == account)
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(mine))
    edges = sorted([(r.started_at, 1) for r in runs] + [(r.finished_at, -1) for r in runs])
    at_once = max(sum(step for _, step in edges[: i + 1]) for i in range(len(edges)))
    assert at_once <= civil.politeness.sessions  # population declares the same limit
    kicked = [e for e in sandbox["population"].gate.events if e.event == "kicked"]
    assert kicked == []  # the sandbox never saw a second session of one account


def test_a_machine_that_was_off_runs_each_missed_job_once(
    on_database: Settings, vault: Vault, receiver: Receiver
) -> None:
    store = Store(make_engine(on_database.resolved_database_url))
    tz = ZoneInfo(on_database.timezone)
    due = dt.datetime.now(tz) + dt.timedelta(seconds=3)
    once_a_day = f"{due.second} {due.minute} {due.hour} * * *"
    fast = _compressed(on_database, receiver, schedules={"elderly": once_a_day})
    with running(fast, ELDERLY):
        pass  # the jobs are stored with their next run; then the machine goes off
    time.sleep(max(0.0, (due - dt.datetime.now(tz)).total_seconds()) + 2)
    assert _runs(store) == []
    with running(fast, ELDERLY):
        wait_for(lambda: len(_runs(store, "elderly")) >= 3, "the missed runs")
        time.sleep(3)
    assert sorted(r.account for r in _runs(store, "elderly")) == ["donghu", "nanshan", "xiyuan"]


def test_a_wrong_password_is_tried_once_and_alerted_once(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, receiver: Receiver
) -> None:
    vault.set("civil", "donghu", password="Wrong-password-99")
    fast = _compressed(settings, receiver, schedules={"elderly": "*/2 * * * * *"})
    with running(fast, ELDERLY):
        wait_for(
            lambda: len([r for r in _runs(store) if r.account == "xiyuan" and r.status == "ok"]) >= 3,
            "rounds",
        )
    assert sandbox["civil"].gate.wrong_passwords(sandbox["civil"].account("donghu").username) == 1
    (alert,) = _alerts(receiver, "bad_credentials")
    assert alert["account"] == "donghu" and "民政养老服务系统" in alert["title"]
    assert "harvest vault set civil donghu --password" in alert["text"]


def test_a_system_that_is_down_is_retried_and_succeeds_when_it_is_back(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, receiver: Receiver
) -> None:
    system = sandbox["civil"]
    system.switches.fault_500_rate = 1.0
    due = dt.datetime.now(ZoneInfo(settings.timezone)) + dt.timedelta(seconds=2)
    fast = _compressed(
        settings, receiver, schedules={"t_elderly_quick": f"{due.second} {due.minute} {due.hour} * * *"}
    )
    robots = {"t_elderly_quick": discover()["t_elderly_quick"]}
    with running(fast, robots):
        wait_for(lambda: any(r.failure_kind == "system_unavailable" for r in _runs(store)), "a failed run")
        system.switches.fault_500_rate = 0.0  # the system comes back
        wait_for(lambda: len([r for r in _runs(store) if r.status == "ok"]) == 3, "the retries to succeed")
    assert _alerts(receiver, "system_unavailable") == []  # retried, not a person's problem


def test_a_stale_dataset_alerts_once_with_a_valid_dingtalk_signature(
    settings: Settings, store: Store, vault: Vault, receiver: Receiver
) -> None:
    secret = "SEC-test-0123456789abcdef"
    fast = _compressed(
        settings,
        receiver,
        schedules={"elderly": "0 0 1 1 *"},  # not due: only the freshness check acts
        alert_webhook_url=None,
        alert_dingtalk_url=f"{receiver.url}/robot/send?access_token=tok-123456789",
        alert_dingtalk_secret=secret,
        max_age_hours=0.0005,  # 1.8 seconds
        freshness_check_s=1,
    )
    (report,) = harvest(fast, store, vault, [("elderly", "donghu")])
    assert report.status == "ok"
    with running(fast, ELDERLY):
        wait_for(lambda: receiver.posts, "the stale alert")
        time.sleep(3)  # more checks: still one alert
    ((query, body),) = receiver.posts
    timestamp = int(query["timestamp"][0])
    assert query["sign"][0] == dingtalk_sign(secret, timestamp)
    assert query["sign"][0] != dingtalk_sign("another secret", timestamp)
    assert body["msgtype"] == "markdown" and "民政养老服务系统" in body["markdown"]["text"]


def test_a_second_scheduler_on_the_same_database_refuses_to_start(
    on_database: Settings, vault: Vault, receiver: Receiver
) -> None:
    fast = _compressed(on_database, receiver, schedules={"elderly": "0 0 1 1 *"})
    with running(fast, ELDERLY):
        second = HarvestScheduler(fast, robots=ELDERLY)
        with pytest.raises(SchedulerBusy, match="已有调度器在运行"):
            second.start()


def test_sigterm_mid_run_stops_in_time_leaves_nothing_and_the_next_start_runs_the_job_again(
    settings: Settings,
    store: Store,
    vault: Vault,
    sandbox: Sandbox,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (good,) = harvest(settings, store, vault, [("elderly", "donghu")])
    before = snapshot(store, "elderly")
    system = sandbox["civil"]
    system.switches.fault_slow_rate, system.switches.slow_seconds = 1.0, 2.0  # every page takes a while
    due = dt.datetime.now(ZoneInfo(settings.timezone)) + dt.timedelta(seconds=8)  # after the daemon starts
    once = f"{due.second} {due.minute} {due.hour} * * *"
    monkeypatch.setenv("HARVEST_SCHEDULES", json.dumps({"elderly": once}))
    monkeypatch.setenv("HARVEST_SCHEDULE_JITTER_S", "0")
    monkeypatch.setenv("HARVEST_STOP_TIMEOUT_S", "1")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("harvest")), "schedule"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any(r.status == "running" for r in _runs(store)), "a run to start", timeout=30)
        stopped = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 1 + 15  # the timeout, then Chromium and the browser closing
    finally:
        daemon.kill()
    assert daemon.pid not in owned_browsers().values()
    cancelled = [r for r in _runs(store) if r.status != "ok"]
    assert cancelled and {r.status for r in cancelled} == {"cancelled"}
    assert snapshot(store, "elderly").equals(before)

    system.switches.fault_slow_rate = 0.0
    owed = {r.account for r in cancelled}
    done = Counter(r.account for r in _runs(store) if r.status == "ok")
    again = settings.model_copy(update={"schedules": {"elderly": once}, "schedule_jitter_s": 0})
    with running(again, ELDERLY):  # the next start: the cancelled runs are owed and run now
        wait_for(
            lambda: all(
                Counter(r.account for r in _runs(store) if r.status == "ok")[a] > done[a] for a in owed
            ),
            "the owed runs",
        )
    assert good.status == "ok"
