"""What is due: one planned job per robot × account of its system, each on its cron."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from machine import zone
from robots.runtime import RobotSpec, broken, discover
from settings import ConfigurationError, Settings
from vault import Vault


@dataclass(frozen=True)
class PlannedJob:
    id: str
    robot: RobotSpec
    account: str
    cron: str


def job_id(robot: str, system: str, account: str) -> str:
    return f"{robot}@{system}/{account}"


def planned_id(job: str) -> str:
    """The planned job a scheduler job runs: itself, or the one a ``retry:<id>:<n>`` job retries."""
    return job.removeprefix("retry:").rsplit(":", 1)[0] if job.startswith("retry:") else job


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
