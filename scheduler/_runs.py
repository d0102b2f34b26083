"""One run of one planned job, wherever it is executed: the failure policy hears its end, a job
waiting for a person is not run, and a stop cancels it (nothing published, owed at the next start,
or handed back to the pool's queue).

A request may come twice (the pool's broker hands a dead worker's message to another): before it
runs, its run id says what happened. Ended: nothing to do. Running in a live process: nothing to
do. Left by a dead process: run again as the next attempt (``<run id>-2``), so the history shows
both and only the new one can publish (the dead one's staging is dropped as ``killed``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from loguru import logger
from sqlmodel import Session

from machine import pid_alive
from robots._runner import ACCOUNT_LEASE_S
from robots.runtime import Harvester, RunReport
from scheduler._planning import PlannedJob, planned_id
from scheduler._policy import FailurePolicy
from settings import Settings
from store import Lease, Run, Store
from vault import Vault

Requeue = Callable[["RunRequest", float], None]  # hand a request back to the pool, after so many seconds
TimeLimit = Callable[[PlannedJob], float]  # seconds a run of the job may take before it is cut off


@dataclass(frozen=True)
class RunRequest:
    """What the scheduler hands an executor: the job that fired, and the id its run will have."""

    job: str  # a planned job's id, or a retry's (retry:<planned id>:<nonce>)
    run_id: str  # minted when the job fired, so a request delivered twice is one run

    @property
    def planned(self) -> str:
        return planned_id(self.job)

    def again(self, attempt: int) -> RunRequest:
        """This request as its ``attempt``-th run: ``<first id>-<attempt>``."""
        return dataclasses.replace(self, run_id=f"{self.run_id.rsplit('-', 1)[0]}-{attempt}")


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
        requeue: Requeue | None = None,
        time_limit: TimeLimit | None = None,
    ) -> None:
        self.settings, self.store, self.vault, self.policy = settings, store, vault, policy
        self.jobs = jobs
        self.holder = holder  # what holds the accounts of its runs, as `harvest run` is told
        self.requeue = requeue  # the pool's: a stopped run goes back to the queue instead of being owed
        self.time_limit = time_limit
        self.stopping = threading.Event()
        self._cancelling = threading.Event()
        self._running: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[RunReport]]] = {}
        self._guard = threading.Lock()

    def planned(self, request: RunRequest) -> PlannedJob | None:
        planned = self.jobs.get(request.planned)
        if planned is None:
            logger.warning("任务 {} 已不在计划中（机器人或账号已删除），跳过", request.planned)
        return planned

    def owe(self, planned: PlannedJob, request: RunRequest) -> None:
        """``request`` could not start or finish before the stop: back to the pool's queue, else owed
        at the next start."""
        if self.requeue is not None:
            self.requeue(request, 0)
            return
        with self.policy.states.editing(planned.id) as state:
            state.owed = True

    def execute(self, request: RunRequest) -> RunReport | None:
        """Run the request now, in this thread; None when it is not run (stopping, waiting for a person)."""
        planned = self.planned(request)
        if planned is None:
            return None
        if self.stopping.is_set():
            self.owe(planned, request)
            return None
        request = self._due(request)
        if request is None:
            return None
        if self.policy.waiting_for_person(planned):
            logger.info("{} 在等人处理（见此前发出的告警），本次不运行", planned.id)
            return None
        return self._run(planned, request)

    def _due(self, request: RunRequest) -> RunRequest | None:
        """The request as it runs now (itself, or its next attempt), or None if its run ended or runs."""
        last = self._last_attempt(request.run_id)
        if last is None:
            return request
        if last.status == "running" and self._alive(last):
            logger.info("运行 {} 仍在进程 {}（主机 {}）中进行，不重复运行", last.id[:8], last.pid, last.host)
            if last.host != socket.gethostname() and self.requeue is not None:
                self.requeue(request, ACCOUNT_LEASE_S)  # a dead machine's lease expires: look again then
            return None
        if last.status not in ("running", "killed"):
            logger.info("运行 {} 已结束（{}），重复送达的请求不再运行", last.id[:8], last.status)
            return None
        logger.warning("运行 {} 的进程已中途结束：重新运行", last.id[:8])
        return request.again(_attempt(last.id) + 1)

    def _last_attempt(self, run_id: str) -> Run | None:
        first = run_id.rsplit("-", 1)[0]
        runs = Run.__table__.c  # type: ignore[attr-defined]
        with Session(self.store.engine) as session:
            attempts = (
                session.exec(
                    sa.select(Run).where(sa.or_(runs.id == first, runs.id.like(f"{first}-%")))  # type: ignore[call-overload]
                )
                .scalars()
                .all()
            )
        return max(attempts, key=lambda run: _attempt(run.id), default=None)

    def _alive(self, run: Run) -> bool:
        """Is the process running ``run`` alive? Known at once on this host; elsewhere, while it
        holds the account's lease (a dead machine's lease expires after its ttl)."""
        if run.host == socket.gethostname():
            return pid_alive(run.pid)
        holder = Lease(self.store.engine, f"account:{run.system}/{run.account}", what=self.holder).holder()
        return holder is not None and (holder.host, holder.pid) == (run.host, run.pid)

    def cancel_all(self) -> None:
        with self._guard:
            self._cancelling.set()  # and a run that starts from now on is cancelled as it starts
            for loop, task in self._running.values():
                loop.call_soon_threadsafe(task.cancel)  # the run ends `cancelled`, nothing published

    def _run(self, planned: PlannedJob, request: RunRequest) -> RunReport:
        limit = self.time_limit(planned) if self.time_limit is not None else None

        async def go() -> RunReport:
            harvester = Harvester(
                self.settings,
                self.store,
                self.vault,
                hooks=[self.policy.hook(planned)],
                holder=self.holder,
                queued=True,  # a job waits for a free slot of its system as long as it takes
            )
            async with harvester:
                run = harvester.run(planned.robot, planned.account, run_id=request.run_id)
                task = asyncio.ensure_future(asyncio.wait_for(run, limit))
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
            if self.requeue is not None:  # the pool's stop: another worker runs its next attempt
                self.owe(planned, request.again(_attempt(request.run_id) + 1))
                return self._ended(planned, "cancelled", "cancelled", "stopped with the worker; requeued")
            report = self._ended(
                planned, "cancelled", "cancelled", "stopped with the scheduler; nothing was published"
            )
        except TimeoutError:  # the run was cancelled (nothing published); a system this slow is retried
            minutes = f"{(limit or 0) / 60:.0f}"
            report = self._ended(
                planned,
                "failed",
                "system_unavailable",
                f"运行超过时限 {minutes} 分钟，已中止，没有发布任何数据",
            )
        self.policy.after(planned, report)  # a cancelled run ends before the runner's hooks hear it
        return report

    def _ended(self, planned: PlannedJob, status: str, kind: str, message: str) -> RunReport:
        robot = planned.robot
        return RunReport(
            robot.name,
            robot.system.name,
            planned.account,
            robot.dataset,
            status=status,
            kind=kind,
            message=message,
        )


def _attempt(run_id: str) -> int:
    """Which attempt of its request a run id is: ``<id>`` the first, ``<id>-<n>`` the n-th."""
    _, dash, number = run_id.rpartition("-")
    return int(number) if dash and number.isdigit() else 1
