"""What every package asks this machine the same way: the time now, a time as people here read it,
and whether a process still runs.

Times are stored in UTC and shown in the unit's zone (``HARVEST_TIMEZONE``, Beijing time by default),
always with the zone's name beside them, so no one has to guess which clock a line was written by.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_ZONE", "human_time", "local_time", "pid_alive", "utc_now", "zone", "zone_label"]

DEFAULT_ZONE = "Asia/Shanghai"
_LABELS = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "PRC": "北京时间", "UTC": "UTC"}


def utc_now() -> dt.datetime:
    """Now, aware, in UTC: what the database and the logs keep."""
    return dt.datetime.now(dt.UTC)


def zone(name: str | None = None) -> ZoneInfo:
    """The named zone (the unit's ``HARVEST_TIMEZONE``); an unknown name is a ``ValueError`` that says so."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use a name like Asia/Shanghai") from exc


def zone_label(name: str | None = None) -> str:
    """How people name the zone: 北京时间 for China's, else its IANA name."""
    return _LABELS.get(name or DEFAULT_ZONE, name or DEFAULT_ZONE)


def local_time(when: dt.datetime, name: str | None = None) -> dt.datetime:
    """``when`` in the unit's zone; a naive time is taken as UTC (SQLite hands them back naive)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return aware.astimezone(zone(name))


def human_time(when: dt.datetime | None, name: str | None = None, *, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``when`` as staff read it, labelled: ``2026-12-01 22:10 北京时间``; None is ``-``."""
    if when is None:
        return "-"
    return f"{local_time(when, name):{fmt}} {zone_label(name)}"


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` of this machine still run? (One that is not ours to signal counts as alive.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
