"""The scheduler: every robot × account on its cron, never two sessions of one account at once,
retries when a system is down, one alert when only a person can help, stale-data alerts.

Its parts, each a module:

- ``_planning``: what is due (one job per robot × account, its cron);
- ``_state`` and ``_policy``: what each job's last end asks for (retries, one alert, waiting for a
  person), kept in the database so every process of a pool shares it;
- ``_runs``: one run of a planned job, wherever it runs (the account's lease is the run's own);
- ``_executors``: what runs the requests (``LocalExecutor``: threads of this process);
- ``_daemon``: APScheduler as the cron source, handing each fired job to the executor.
"""

from scheduler._daemon import DIGEST_JOB, FRESHNESS_JOB, SCHEDULER, HarvestScheduler, SchedulerBusy
from scheduler._executors import Executor, LocalExecutor
from scheduler._planning import PlannedJob, describe, job_id, plan, planned_id, trigger
from scheduler._policy import FailurePolicy
from scheduler._runs import JobRuns, RunRequest
from scheduler._state import JobState, JobStates

__all__ = [
    "DIGEST_JOB",
    "FRESHNESS_JOB",
    "SCHEDULER",
    "Executor",
    "FailurePolicy",
    "HarvestScheduler",
    "JobRuns",
    "JobState",
    "JobStates",
    "LocalExecutor",
    "PlannedJob",
    "RunRequest",
    "SchedulerBusy",
    "describe",
    "job_id",
    "plan",
    "planned_id",
    "trigger",
]
