"""The failure policy's state is one row per job that the processes of a pool share: runs of a job
ending together, in different processes, tell a person once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from alerts import JsonWebhook, Notifier
from robots.runtime import RunReport, discover
from scheduler import JobStates
from scheduler._planning import PlannedJob, job_id
from scheduler._policy import FailurePolicy
from settings import Settings
from store import Store, make_engine
from tests.scheduler_helpers import Receiver
from vault import Vault

ENDINGS = 6  # runs of one job ending at once: the one that parked the account, and those behind it


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _parked(planned: PlannedJob, n: int) -> RunReport:
    robot = planned.robot
    return RunReport(
        robot=robot.name,
        system=robot.system.name,
        account=planned.account,
        dataset=robot.dataset,
        status="parked",
        kind="bad_credentials",
        message="民政养老服务系统 拒绝了密码",
        run_id=f"run-{n}",
    )


def test_runs_of_one_job_parked_together_alert_once(
    settings: Settings, database_url: str, vault: Vault, receiver: Receiver
) -> None:
    store = Store(make_engine(database_url))
    robot = discover()["elderly"]
    planned = PlannedJob(job_id(robot.name, robot.system.name, "donghu"), robot, "donghu", "0 2 * * *")
    # One policy per ending, as each worker process has its own, all on the one database.
    policies = [
        FailurePolicy(settings, store, vault, Notifier([JsonWebhook(receiver.url)]), retry=lambda *_: None)
        for _ in range(ENDINGS)
    ]
    together = threading.Barrier(ENDINGS)

    def end(n: int) -> None:
        together.wait()
        policies[n].after(planned, _parked(planned, n))

    threads = [threading.Thread(target=end, args=(n,)) for n in range(ENDINGS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [body["kind"] for _, body in receiver.posts] == ["bad_credentials"]
    state = JobStates(store.engine).get(planned.id)
    assert state.kind == "bad_credentials" and state.last_status == "bad_credentials"
