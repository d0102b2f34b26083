"""The daemon: APScheduler as the cron source, its job store in the project database, and a hand-off
that gives each fired job to the executor (or, for the freshness check and the digests, does it here).

Facts it is designed by (APScheduler 3):

- A job store cannot be shared by two scheduler processes (both would run the same job),
  so one scheduler process runs per database: a second one refuses to start (the lease).
- ``misfire_grace_time`` defaults to one second, which silently skips late runs: a machine
  that was off all night must still run each missed job once when it wakes, so jobs get
  a grace of hours and ``coalesce``.
- The job store pickles jobs by reference: the job functions are module-level markers taking only
  ids, never called by APScheduler itself: ``_Handoff`` reads which one fired and acts for it, so
  no scheduler object is module-global.
"""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from loguru import logger

from alerts import Alert, Notifier
from machine import utc_now, zone
from robots.runtime import RobotSpec, broken
from scheduler._executors import Executor, LocalExecutor
from scheduler._planning import PlannedJob, plan, planned_id, trigger
from scheduler._policy import FailurePolicy
from scheduler._runs import JobRuns, RunRequest
from settings import Settings
from store import Lease, Snapshot, Store, make_engine
from vault import Vault

FRESHNESS_JOB = "freshness"
DIGEST_JOB = "desk-digest"  # the grid workers' daily digest (desk._digest)
SCHEDULER_LEASE_S = 30.0
SCHEDULER = "harvest schedule"  # what holds the scheduler's lease and its runs' account leases


class SchedulerBusy(RuntimeError):
    """Another scheduler process already runs on this database."""


def run_job(job: str) -> None:
    """Marks a robot × account job (or its retry) in the job store; the hand-off runs it."""


def check_freshness() -> None:
    """Marks the freshness check in the job store."""


def send_digests() -> None:
    """Marks the grid workers' daily digest in the job store (at HARVEST_DESK_DIGEST_AT)."""


class _Handoff(BaseExecutor):
    """APScheduler's executor: each fired job goes to ``daemon.fired`` in a thread of its own, and
    counts as done once handed on (a run's own end is the executor's and the policy's business)."""

    def __init__(self, daemon: HarvestScheduler) -> None:
        super().__init__()
        self.daemon = daemon
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="harvest-handoff")

    def _do_submit_job(self, job: Job, run_times: list[dt.datetime]) -> None:
        self._threads.submit(self._hand_on, job)

    def _hand_on(self, job: Job) -> None:
        try:
            self.daemon.fired(job.func, list(job.args))
        except Exception as exc:
            self._run_job_error(job.id, exc, exc.__traceback__)
        else:
            self._run_job_success(job.id, [])

    def shutdown(self, wait: bool = True) -> None:
        self._threads.shutdown(wait=wait)


class HarvestScheduler:
    """Owns the APScheduler instance, the scheduler's lease, and hands due runs to an executor."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        robots: dict[str, RobotSpec] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.store = Store(make_engine(settings.resolved_database_url))
        self.vault = Vault.open(settings)
        self.notifier = notifier or Notifier.from_settings(settings)
        self.jobs = {job.id: job for job in plan(settings, self.vault, robots)}
        self.policy = FailurePolicy(settings, self.store, self.vault, self.notifier, retry=self.retry)
        self.executor = executor or self._executor()
        self._lease: Lease | None = None
        self._scheduler: BackgroundScheduler | None = None

    def _executor(self) -> Executor:
        """The pool (``HARVEST_EXECUTOR=dramatiq``: messages for `harvest worker`), else own threads."""
        if self.settings.executor == "dramatiq":
            from scheduler._dramatiq import DramatiqExecutor  # the distributed extra, only when chosen

            return DramatiqExecutor(self.settings)
        runs = JobRuns(self.settings, self.store, self.vault, self.policy, self.jobs, holder=SCHEDULER)
        return LocalExecutor(runs, self.settings.scheduler_workers)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._lease = Lease(self.store.engine, "scheduler", what=SCHEDULER, ttl=SCHEDULER_LEASE_S)
        if not self._lease.try_acquire():
            raise SchedulerBusy(
                f"此数据库上已有调度器在运行（{self._lease.holder() or '另一个进程'}）：先停止它，"
                "两个调度器共用一个任务库会把每个任务运行两次"
            )
        tz = zone(self.settings.timezone)
        self._scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.store.engine, tablename="apscheduler_jobs")},
            executors={"default": _Handoff(self)},
            job_defaults={
                "coalesce": True,  # a machine that was off runs each missed job once, not once per miss
                "max_instances": 1,
                "misfire_grace_time": self.settings.misfire_grace_s,
            },
            timezone=tz,
        )
        self._scheduler.start(paused=True)
        existing = {job.id: job for job in self._scheduler.get_jobs()}
        for known in existing.values():
            if known.id not in (FRESHNESS_JOB, DIGEST_JOB) and planned_id(known.id) not in self.jobs:
                known.remove()  # a robot or an account that no longer exists
        for job in self.jobs.values():
            self._add(job, existing.get(job.id))
        for job in self.jobs.values():  # runs a stop interrupted, owed since
            with self.policy.states.editing(job.id) as state:
                owed, state.owed = state.owed, False
            if owed:
                self.retry(job, delay=0)
        self._scheduler.add_job(
            check_freshness,
            "interval",
            seconds=self.settings.freshness_check_s,
            id=FRESHNESS_JOB,
            replace_existing=True,
            next_run_time=dt.datetime.now(tz),
        )
        if self.settings.desk_digests:
            hour, minute = map(int, self.settings.desk_digest_at.split(":"))
            daily = CronTrigger(hour=hour, minute=minute, timezone=tz)
            self._scheduler.add_job(send_digests, daily, id=DIGEST_JOB, replace_existing=True)
        elif DIGEST_JOB in existing:
            existing[DIGEST_JOB].remove()
        self._scheduler.resume()
        for module, reason in broken().items():
            logger.error("机器人文件 {} 无法载入，其机器人不参与调度：{}", module, reason)
        logger.info("调度器已启动，共 {} 个任务", len(self.jobs))

    def _add(self, job: PlannedJob, kept: Job | None) -> None:
        assert self._scheduler is not None
        cron = trigger(job.cron, self.settings.timezone)
        # replace_existing would move a missed run to the next slot: keep its due time, so a
        # machine that was off runs it (once: coalesce) when it starts again.
        due = (
            {"next_run_time": kept.next_run_time}
            if kept and kept.next_run_time and str(kept.trigger) == str(cron)
            else {}
        )
        self._scheduler.add_job(
            run_job,
            cron,
            args=[job.id],
            id=job.id,
            name=f"{job.robot.name} · {job.robot.system.name}/{job.account}",
            replace_existing=True,
            jitter=self.settings.schedule_jitter_s or None,
            **due,
        )

    def stop(self, timeout: float | None = None) -> None:
        """Take no new jobs; let running ones finish for ``timeout`` seconds, then cancel them."""
        timeout = self.settings.stop_timeout_s if timeout is None else timeout
        self.policy.stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
        # Runs still finishing may add their retry to the job store, which APScheduler's own
        # shutdown would deadlock on: let them end first.
        self.executor.stop(timeout)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        logger.info("调度器已停止")

    def next_runs(self) -> dict[str, dt.datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    # ---- what fired -----------------------------------------------------------------------

    def fired(self, func: Any, args: list[Any]) -> None:
        if func is run_job:
            self.executor.submit(RunRequest(job=args[0], run_id=uuid.uuid4().hex))
        elif func is check_freshness:
            self.check_freshness()
        elif func is send_digests:
            self.send_digests()

    def retry(self, planned: PlannedJob, delay: float) -> None:
        """A one-off run of ``planned`` after ``delay`` seconds, kept in the job store across restarts."""
        if self._scheduler is None:
            return
        when = dt.datetime.now(zone(self.settings.timezone)) + dt.timedelta(seconds=delay)
        # A new id each time: APScheduler removes a fired one-off job after the fact, and would
        # remove a retry that replaced it under the same id.
        retry = f"retry:{planned.id}:{uuid.uuid4().hex[:8]}"
        self._scheduler.add_job(run_job, DateTrigger(when), args=[retry], id=retry, misfire_grace_time=None)

    # ---- freshness and digests ------------------------------------------------------------

    def check_freshness(self) -> None:
        """Alert once for each dataset older than ``HARVEST_MAX_AGE_HOURS``; clear it once fresh."""
        systems = {job.robot.dataset: job.robot.system for job in self.jobs.values()}
        states = self.policy.states
        for item in Snapshot(self.store.engine).freshness():
            state = states.get(f"stale:{item.dataset}")
            stale = item.age_hours is None or item.age_hours > self.settings.max_age_hours
            if stale and state.kind is None and item.dataset in systems:
                state.kind, state.since = "stale", utc_now()
                system = systems[item.dataset]
                age = "从未成功采集" if item.age_hours is None else f"{item.age_hours:.0f} 小时"
                self.notifier.send(
                    Alert(
                        kind="stale",
                        system=system.name,
                        system_title=system.title,
                        dataset=item.dataset,
                        message=f"last good harvest: {age}",
                        at=utc_now(),
                        max_age_hours=self.settings.max_age_hours,
                    )
                )
                states.save(state)
            elif not stale and state.kind is not None:
                state.kind = state.since = None
                states.save(state)

    def send_digests(self) -> None:
        """The daily digest of every configured grid worker."""
        from desk._digest import send_digests as send  # the desk loads only when a digest is configured

        try:
            send(self.settings, notifier=self.notifier)
        except Exception as exc:  # a digest's failure must not stop the scheduler; the next day retries
            logger.error("每日变动推送失败：{}（下次推送时重试）", type(exc).__name__)
