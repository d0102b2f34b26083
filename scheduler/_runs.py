"""One run of one planned job, wherever it is executed: the failure policy hears its end, a job
waiting for a person is not run, and a stop cancels it (nothing published, owed at the next start)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from robots.runtime import Harvester, RunReport
from scheduler._planning import PlannedJob, planned_id
from scheduler._policy import FailurePolicy
from settings import Settings
from store import Store
from vault import Vault


@dataclass(frozen=True)
class RunRequest:
    """What the scheduler hands an executor: the job that fired, and the id its run will have."""

    job: str  # a planned job's id, or a retry's (retry:<planned id>:<nonce>)
    run_id: str  # minted when the job fired, so a request delivered twice is one run

    @property
    def planned(self) -> str:
        return planned_id(self.job)


class JobRuns:
    """Runs requests of the planned ``jobs``; one object per process that executes them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        vault: Vault,
        policy: FailurePolicy,
        jobs: dict[str, PlannedJob],
        *,
        holder: str,
    ) -> None:
        self.settings, self.store, self.vault, self.policy = settings, store, vault, policy
        self.jobs = jobs
        self.holder = holder  # what holds the accounts of its runs, as `harvest run` is told
        self.stopping = threading.Event()
        self._cancelling = threading.Event()
        self._running: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[RunReport]]] = {}
        self._guard = threading.Lock()

    def planned(self, request: RunRequest) -> PlannedJob | None:
        planned = self.jobs.get(request.planned)
        if planned is None:
            logger.warning("任务 {} 已不在计划中（机器人或账号已删除），跳过", request.planned)
        return planned

    def owe(self, planned: PlannedJob) -> None:
        """The run could not start before the stop: it runs at the next start."""
        state = self.policy.states.get(planned.id)
        state.owed = True
        self.policy.states.save(state)

    def execute(self, request: RunRequest) -> RunReport | None:
        """Run the request now, in this thread; None when it is not run (stopping, waiting for a person)."""
        planned = self.planned(request)
        if planned is None:
            return None
        if self.stopping.is_set():
            self.owe(planned)
            return None
        if self.policy.waiting_for_person(planned):
            logger.info("{} 在等人处理（见此前发出的告警），本次不运行", planned.id)
            return None
        return self._run(planned, request)

    def cancel_all(self) -> None:
        with self._guard:
            self._cancelling.set()  # and a run that starts from now on is cancelled as it starts
            for loop, task in self._running.values():
                loop.call_soon_threadsafe(task.cancel)  # the run ends `cancelled`, nothing published

    def _run(self, planned: PlannedJob, request: RunRequest) -> RunReport:
        async def go() -> RunReport:
            harvester = Harvester(
                self.settings, self.store, self.vault, hooks=[self.policy.hook(planned)], holder=self.holder
            )
            async with harvester:
                task = asyncio.ensure_future(harvester.run(planned.robot, planned.account))
                with self._guard:
                    self._running[request.run_id] = (asyncio.get_running_loop(), task)
                    if self._cancelling.is_set():
                        task.cancel()
                try:
                    return await task
                finally:
                    with self._guard:
                        self._running.pop(request.run_id, None)

        try:
            return asyncio.run(go())
        except asyncio.CancelledError:
            report = RunReport(
                planned.robot.name,
                planned.robot.system.name,
                planned.account,
                planned.robot.dataset,
                status="cancelled",
                kind="cancelled",
                message="stopped with the scheduler; nothing was published",
            )
            self.policy.after(planned, report)  # a cancelled run ends before the runner's hooks hear it
            return report


Submit = Callable[[RunRequest], None]
