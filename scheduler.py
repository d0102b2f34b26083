"""The scheduler: every robot × account on its cron, never two sessions of one account at once,
retries when a system is down, one alert when only a person can help, stale-data alerts.

Facts it is designed by (APScheduler 3):

- A job store cannot be shared by two scheduler processes (both would run the same job),
  so one scheduler process runs per data dir: a second one refuses to start.
- ``misfire_grace_time`` defaults to one second, which silently skips late runs: a machine
  that was off all night must still run each missed job once when it wakes, so jobs get
  a grace of hours and ``coalesce``.
- The job store pickles jobs: job functions are module-level and take only ids, and jobs
  are re-created from the robot declarations at every start (``replace_existing``).

Only the decision "what is due" lives here; each run goes to ``Harvester.run`` in a worker
thread, addressed by robot and account names, so a distributed executor can take its place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from loguru import logger
from sqlmodel import Field, Session, SQLModel

from alerts import Alert, Notifier
from connectors import configured, failure_class
from machine import utc_now, zone
from robots.runtime import Harvester, RobotSpec, RunReport, broken, discover
from settings import ConfigurationError, Settings
from store import Lease, Run, Snapshot, Store, create_tables, make_engine
from vault import Vault

FRESHNESS_JOB = "freshness"
DIGEST_JOB = "desk-digest"  # the grid workers' daily digest (desk._digest)
SCHEDULER_LEASE_S = 30.0
SCHEDULER = "harvest schedule"  # what holds the scheduler's lease and its runs' account leases


class SchedulerBusy(RuntimeError):
    """Another scheduler process already runs on this data dir."""


class JobState(SQLModel, table=True):
    """What the scheduler remembers about a job or a dataset between runs and restarts."""

    __tablename__ = "scheduler_state"

    key: str = Field(primary_key=True)  # a job id, or "stale:<dataset>"
    kind: str | None = None  # the open problem a person was told about; None when healthy
    since: dt.datetime | None = None
    retries: int = 0
    owed: bool = False  # stopped with the scheduler before it could run or finish: run at next start
    last_status: str | None = None
    last_at: dt.datetime | None = None


@dataclass(frozen=True)
class PlannedJob:
    id: str
    robot: RobotSpec
    account: str
    cron: str


def job_id(robot: str, system: str, account: str) -> str:
    return f"{robot}@{system}/{account}"


def trigger(cron: str, timezone: str) -> CronTrigger:
    """A cron trigger from five fields (minute first) or six (second first, for tests and demos)."""
    fields = cron.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(cron, timezone=zone(timezone))
    if len(fields) == 6:
        second, minute, hour, day, month, dow = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=zone(timezone),
        )
    raise ValueError(f"{cron!r} is not a cron line of five (or six, seconds first) fields")


def plan(settings: Settings, vault: Vault, robots: dict[str, RobotSpec] | None = None) -> list[PlannedJob]:
    """One job per robot × account of its system; ``HARVEST_SCHEDULES`` overrides a robot's cron."""
    robots = discover() if robots is None else robots
    unknown = sorted(set(settings.schedules) - set(robots))
    if unknown:
        unloaded = "；另有无法载入的机器人文件 " + "、".join(broken()) if broken() else ""
        raise ConfigurationError(
            f"HARVEST_SCHEDULES 中的机器人 {', '.join(unknown)} 不存在：请改为已有的机器人之一"
            f"（{', '.join(sorted(robots)) or '无'}，见 `harvest list`）{unloaded}"
        )
    for name, cron in settings.schedules.items():
        try:
            trigger(cron, settings.timezone)
        except ValueError as exc:
            raise ConfigurationError(
                f"HARVEST_SCHEDULES 中 {name} 的时间表 {cron!r} 无法使用（{exc}）："
                "请写五段 cron，例如 \"0 2 * * *\"（每天 2 点）"
            ) from exc
    jobs = []
    for spec in robots.values():
        cron = settings.schedules.get(spec.name, spec.schedule)
        for account in vault.accounts(spec.system.name):
            jobs.append(
                PlannedJob(job_id(spec.name, spec.system.name, account.account), spec, account.account, cron)
            )
    return jobs


_active: HarvestScheduler | None = None  # the scheduler of this process, for the job functions


def run_job(job: str) -> None:
    """What APScheduler calls (by name, with an id only): one run of one planned job."""
    if _active is not None:
        _active.execute(job)


def check_freshness() -> None:
    if _active is not None:
        _active.check_freshness()


def send_digests() -> None:
    """The daily digest of every configured grid worker (what APScheduler calls at HARVEST_DESK_DIGEST_AT)."""
    if _active is not None:
        from desk._digest import send_digests as send  # the desk loads only when a digest is configured

        try:
            send(_active.settings, notifier=_active.notifier)
        except Exception as exc:  # a digest's failure must not stop the scheduler; the next day retries
            logger.error("每日变动推送失败：{}（下次推送时重试）", type(exc).__name__)


class HarvestScheduler:
    """Owns the APScheduler instance, the locks and the failure policy of one scheduler process."""

    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        robots: dict[str, RobotSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.store = Store(make_engine(settings.resolved_database_url))
        create_tables(self.store.engine, [JobState.__table__])  # type: ignore[list-item]
        self.vault = Vault.open(settings)
        self.notifier = notifier or Notifier.from_settings(settings)
        self.jobs = {job.id: job for job in plan(settings, self.vault, robots)}
        self._lease: Lease | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._running: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[RunReport]]] = {}
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._executing = 0  # job functions between their start and their end
        self._system_slots: dict[str, threading.BoundedSemaphore] = {}

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        global _active
        self._lease = Lease(self.store.engine, "scheduler", what=SCHEDULER, ttl=SCHEDULER_LEASE_S)
        if not self._lease.try_acquire():
            raise SchedulerBusy(
                f"此数据库上已有调度器在运行（{self._lease.holder() or '另一个进程'}）：先停止它，"
                "两个调度器共用一个任务库会把每个任务运行两次"
            )
        tz = zone(self.settings.timezone)
        self._scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.store.engine, tablename="apscheduler_jobs")},
            executors={"default": ThreadPoolExecutor(self.settings.scheduler_workers)},
            job_defaults={
                "coalesce": True,  # a machine that was off runs each missed job once, not once per miss
                "max_instances": 1,
                "misfire_grace_time": self.settings.misfire_grace_s,
            },
            timezone=tz,
        )
        _active = self
        self._scheduler.start(paused=True)
        existing = {job.id: job for job in self._scheduler.get_jobs()}
        for known in existing.values():
            if known.id not in (FRESHNESS_JOB, DIGEST_JOB) and _planned_id(known.id) not in self.jobs:
                known.remove()  # a robot or an account that no longer exists
        for job in self.jobs.values():
            cron = trigger(job.cron, self.settings.timezone)
            kept = existing.get(job.id)
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
        for job in self.jobs.values():  # runs a stop interrupted, owed since
            state = self._state(job.id)
            if state.owed:
                state.owed = False
                self._save(state)
                self._retry(job, delay=0)
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

    def stop(self, timeout: float | None = None) -> None:
        """Take no new jobs; let running ones finish for ``timeout`` seconds, then cancel them."""
        global _active
        timeout = self.settings.stop_timeout_s if timeout is None else timeout
        self._stopping.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
        deadline = time.monotonic() + timeout
        while self._executing and time.monotonic() < deadline:
            time.sleep(0.1)
        with self._guard:
            for loop, task in self._running.values():
                loop.call_soon_threadsafe(task.cancel)  # the run ends `cancelled`, nothing published
        # Jobs still finishing may add their retry to the job store, which APScheduler's own
        # shutdown would deadlock on: let them end first.
        while self._executing:
            time.sleep(0.1)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        _active = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        logger.info("调度器已停止")

    def next_runs(self) -> dict[str, dt.datetime | None]:
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    # ---- one run ----------------------------------------------------------------------------

    def execute(self, job: str) -> RunReport | None:
        with self._guard:
            self._executing += 1
        try:
            return self._execute(job)
        finally:
            with self._guard:
                self._executing -= 1

    def _execute(self, job: str) -> RunReport | None:
        planned = self.jobs.get(_planned_id(job))
        if planned is None or self._stopping.is_set():
            return None
        if self._waiting_for_person(planned):
            logger.info("{} 在等人处理（见此前发出的告警），本次不运行", planned.id)
            return None
        system = configured(planned.robot.system, self.settings)
        slots = self._system_slots.setdefault(
            system.name, threading.BoundedSemaphore(system.politeness.sessions)
        )
        with slots:  # the account's lease is the run's own (Harvester.run), as for every run
            if self._stopping.is_set():  # it waited for its turn until the stop: owed at next start
                state = self._state(planned.id)
                state.owed = True
                self._save(state)
                return None
            return self._run(planned)  # its end is heard by the policy hook, _after

    def _run(self, planned: PlannedJob) -> RunReport:
        async def go() -> RunReport:
            harvester = Harvester(
                self.settings, self.store, self.vault, hooks=[_Policy(self, planned)], holder=SCHEDULER
            )
            async with harvester:
                task = asyncio.ensure_future(harvester.run(planned.robot, planned.account))
                with self._guard:
                    self._running[planned.id] = (asyncio.get_running_loop(), task)
                try:
                    return await task
                finally:
                    with self._guard:
                        self._running.pop(planned.id, None)

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
            self._after(planned, report)  # a cancelled run ends before the runner's hooks hear it
            return report

    # ---- failure policy ---------------------------------------------------------------------

    def _after(self, planned: PlannedJob, report: RunReport) -> None:
        """What a run's end asks of the scheduler, read from its kind's class in the failure tree."""
        state = self._state(planned.id)
        state.last_status, state.last_at = report.kind or report.status, utc_now()
        failure = failure_class(report.kind)
        if report.status == "ok":
            if state.kind is not None:
                self._alert(planned, "recovered", "the last run succeeded again", report.run_id)
            state.kind, state.since, state.retries = None, None, 0
        elif report.kind is None:
            pass  # skipped: outside the system's allowed hours; the next fire time comes
        elif report.kind == "cancelled":
            state.owed = True  # stopped with the scheduler: it runs again at the next start
        elif failure.retried and state.retries < self.settings.retry_limit:
            state.retries += 1
            delay = self.settings.retry_base_s * 2 ** (state.retries - 1) * random.uniform(0.8, 1.2)
            logger.warning("{}：{}；{:.0f} 秒后第 {} 次重试", planned.id, report.kind, delay, state.retries)
            if not self._stopping.is_set():
                self._retry(planned, delay)
        elif failure.alerted and state.kind != report.kind:
            state.kind, state.since = report.kind, utc_now()
            self._alert(planned, report.kind, report.message, report.run_id)
        self._save(state)

    def _retry(self, planned: PlannedJob, delay: float) -> None:
        """A one-off run of ``planned`` after ``delay`` seconds, kept in the job store across restarts."""
        if self._scheduler is None:
            return
        when = dt.datetime.now(zone(self.settings.timezone)) + dt.timedelta(seconds=delay)
        # A new id each time: APScheduler removes a fired one-off job after the fact, and would
        # remove a retry that replaced it under the same id.
        retry = f"retry:{planned.id}:{uuid.uuid4().hex[:8]}"
        self._scheduler.add_job(run_job, DateTrigger(when), args=[retry], id=retry, misfire_grace_time=None)

    def _waiting_for_person(self, planned: PlannedJob) -> bool:
        """A job whose last failure needs a person waits until the person has acted: the account
        is un-parked in the vault, or someone ran the robot by hand and it succeeded."""
        state = self._state(planned.id)
        failure = failure_class(state.kind)
        if state.kind is None or not failure.waits:
            return False
        if self.vault.get(planned.robot.system.name, planned.account).status == "parked":
            return True  # any kind: a parked account's password is not sent until a person acts
        if failure.parks:
            return False  # the person acted: the account is not parked any more
        runs = Run.__table__.c  # type: ignore[attr-defined]
        with self.store.engine.connect() as conn:
            fixed = conn.scalar(
                sa.select(sa.func.count()).where(
                    runs.robot == planned.robot.name,
                    runs.account == planned.account,
                    runs.status == "ok",
                    runs.started_at > state.since,
                )
            )
        return not fixed

    def _alert(self, planned: PlannedJob, kind: str, message: str, run_id: str | None) -> None:
        system = planned.robot.system
        self.notifier.send(
            Alert(
                kind=kind,
                system=system.name,
                system_title=system.title,
                account=planned.account,
                robot=planned.robot.name,
                dataset=planned.robot.dataset,
                message=message,
                run_id=run_id,
                at=utc_now(),
            )
        )

    # ---- freshness --------------------------------------------------------------------------

    def check_freshness(self) -> None:
        """Alert once for each dataset older than ``HARVEST_MAX_AGE_HOURS``; clear it once fresh."""
        systems = {job.robot.dataset: job.robot.system for job in self.jobs.values()}
        for item in Snapshot(self.store.engine).freshness():
            state = self._state(f"stale:{item.dataset}")
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
                self._save(state)
            elif not stale and state.kind is not None:
                state.kind = state.since = None
                self._save(state)

    # ---- state --------------------------------------------------------------------------------

    def _state(self, key: str) -> JobState:
        with Session(self.store.engine) as session:
            return session.get(JobState, key) or JobState(key=key)

    def _save(self, state: JobState) -> None:
        with Session(self.store.engine) as session:
            session.merge(state)
            session.commit()


def _planned_id(job: str) -> str:
    """The planned job a scheduler job runs: itself, or the one a ``retry:<id>:<n>`` job retries."""
    return job.removeprefix("retry:").rsplit(":", 1)[0] if job.startswith("retry:") else job


def describe(settings: Settings, vault: Vault) -> list[dict[str, Any]]:
    """Every planned job with its next fire time, as `harvest schedule --list` shows it."""
    now = dt.datetime.now(zone(settings.timezone))
    return [
        {
            "job": job.id,
            "robot": job.robot.name,
            "dataset": job.robot.dataset,
            "system": job.robot.system.name,
            "account": job.account,
            "cron": job.cron,
            "next_run": trigger(job.cron, settings.timezone).get_next_fire_time(None, now),
        }
        for job in plan(settings, vault)
    ]


class _Policy:
    """The scheduler's failure policy (retries, alerts, waiting for a person) as a run hook."""

    def __init__(self, scheduler: HarvestScheduler, planned: PlannedJob) -> None:
        self.scheduler, self.planned = scheduler, planned

    def started(self, key: str, report: RunReport) -> None:
        pass

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        pass

    def finished(self, key: str, report: RunReport) -> None:
        self.scheduler._after(self.planned, report)
