"""The failure policy: what a run's end asks for (a retry, one alert, waiting for a person), read from
its kind's class in the failure tree. It lives wherever the run ran (the scheduler's process, or a
worker of the pool): its state is in the database and its retry is the executor's."""

from __future__ import annotations

import random
from collections.abc import Callable

import sqlalchemy as sa
from loguru import logger

from alerts import Alert, Notifier
from connectors import failure_class
from machine import utc_now
from robots.runtime import RunReport
from scheduler._planning import PlannedJob
from scheduler._state import JobState, JobStates
from settings import Settings
from store import Run, Store
from vault import Vault

Retry = Callable[[PlannedJob, float], None]  # run the job again after so many seconds


class FailurePolicy:
    def __init__(
        self, settings: Settings, store: Store, vault: Vault, notifier: Notifier, *, retry: Retry
    ) -> None:
        self.settings, self.store, self.vault, self.notifier = settings, store, vault, notifier
        self.states = JobStates(store.engine)
        self.retry = retry
        self.stopping = False  # no retry is asked for once the scheduler stops

    def after(self, planned: PlannedJob, report: RunReport) -> None:
        """What a run's end asks of the scheduler, read from its kind's class in the failure tree.
        The state is decided under its row's lock and the alert sent after it is released: a slow
        webhook must not hold up the database."""
        with self.states.editing(planned.id) as state:
            alert, delay = self._decide(planned, state, report)
        if alert is not None:
            self.alert(planned, *alert, report.run_id)
        if delay is not None and not self.stopping:
            self.retry(planned, delay)

    def _decide(
        self, planned: PlannedJob, state: JobState, report: RunReport
    ) -> tuple[tuple[str, str] | None, float | None]:
        """``state`` updated for ``report``, and the alert (kind, message) and retry delay it asks for."""
        state.last_status, state.last_at = report.kind or report.status, utc_now()
        failure = failure_class(report.kind)
        if report.status == "ok":
            recovered = state.kind is not None
            state.kind, state.since, state.retries = None, None, 0
            return (("recovered", "the last run succeeded again") if recovered else None), None
        if report.kind is None:
            return None, None  # skipped: outside the system's allowed hours; the next fire time comes
        if report.kind == "cancelled":
            state.owed = True  # stopped with the scheduler: it runs again at the next start
        elif failure.retried and state.retries < self.settings.retry_limit:
            state.retries += 1
            delay = self.settings.retry_base_s * 2 ** (state.retries - 1) * random.uniform(0.8, 1.2)
            logger.warning("{}：{}；{:.0f} 秒后第 {} 次重试", planned.id, report.kind, delay, state.retries)
            return None, delay
        elif failure.alerted and state.kind != report.kind:
            state.kind, state.since = report.kind, utc_now()
            return (report.kind, report.message), None
        return None, None

    def waiting_for_person(self, planned: PlannedJob) -> bool:
        """A job whose last failure needs a person waits until the person has acted: the account
        is un-parked in the vault, or someone ran the robot by hand and it succeeded."""
        state = self.states.get(planned.id)
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

    def alert(self, planned: PlannedJob, kind: str, message: str, run_id: str | None) -> None:
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

    def hook(self, planned: PlannedJob) -> PolicyHook:
        return PolicyHook(self, planned)


class PolicyHook:
    """The failure policy as a run hook: it hears the run's end."""

    def __init__(self, policy: FailurePolicy, planned: PlannedJob) -> None:
        self.policy, self.planned = policy, planned

    def started(self, key: str, report: RunReport) -> None:
        pass

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        pass

    def finished(self, key: str, report: RunReport) -> None:
        self.policy.after(self.planned, report)
