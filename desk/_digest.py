"""The daily digest: each grid worker gets one message a day with their grid's changes, masked.

Which desk user works which grid is a desk table (``desk_grid``, set by `harvest desk set-grid`); where
their digest goes is a setting (``HARVEST_DESK_DIGESTS``): webhook URLs carry tokens, so they stay out of
the database and the logs. Sending goes through the alert channels (DingTalk signed, WeCom, a JSON
webhook) and their notifier's retries; a digest is written to ``desk_digest`` (user, day) only after
the channel confirmed it, so a second run the same day sends nothing and a failed one is sent again by
the next run. A worker whose grid had no change gets a short 今日无变动: silence would look the same as
a digest that never ran.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from loguru import logger
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select

from alerts import DingTalk, JsonWebhook, Notifier, WeCom
from alerts._channels import Channel
from desk._places import Places
from desk._staff import StaffUser
from machine import local_time, utc_now, zone, zone_label
from settings import DigestTarget, Settings
from store import Access, Changed, GridChanges, Snapshot, changes_since, create_tables

FIRST = 5  # items per kind in a message; the desk's page has the rest
KINDS = (  # GridChanges' lists as staff call them
    ("arrived", "新迁入/新增"),
    ("gone", "迁出/注销"),
    ("changed", "信息变更"),
    ("tagged", "新增标签"),
)
ACTOR = "digest"  # the audit's actor for a digest sent


class GridWorker(SQLModel, table=True):
    """The grid a desk user works (网格员): their digest is that grid's changes."""

    __tablename__ = "desk_grid"

    user: str = Field(primary_key=True)
    grid: str
    set_at: dt.datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))


class SentDigest(SQLModel, table=True):
    """A digest a channel confirmed: one per user and day; the next one starts where it ended."""

    __tablename__ = "desk_digest"

    user: str = Field(primary_key=True)
    day: dt.date = Field(primary_key=True)
    until: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    sent_at: dt.datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))
    changes: int = 0


TABLES = [GridWorker.__table__, SentDigest.__table__]  # type: ignore[attr-defined]


def set_grid(engine: Engine, user: str, grid: str) -> None:
    """``user`` works ``grid`` from now on (the digest's grid)."""
    create_tables(engine, TABLES)
    with Session(engine) as session:
        session.merge(GridWorker(user=user, grid=grid))
        session.commit()


def grids(engine: Engine) -> dict[str, str]:
    """Each desk user's grid, by user."""
    create_tables(engine, TABLES)
    with Session(engine) as session:
        return {row.user: row.grid for row in session.exec(select(GridWorker))}


def known_grids(engine: Engine, scope: str) -> list[str]:
    """The grids the snapshot holds records of in community ``scope``, in order."""
    snapshot = Snapshot(engine)
    found: set[str] = set()
    for info in snapshot.datasets():
        grid = next((f for f, r in snapshot.fields(info.name).roles.items() if r == "grid"), None)
        if grid is not None:
            found.update(snapshot.distinct(info.name, grid, scope=scope))
    return sorted(found)


@dataclass(frozen=True)
class Digest:
    """One worker's digest of one day: what a JSON webhook gets besides ``title`` and ``text``
    (counts only: the masked names are in the text)."""

    user: str
    community: str
    grid: str
    day: dt.date
    counts: dict[str, int]
    link: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "digest", "day": self.day.isoformat()} | {
            "user": self.user,
            "community": self.community,
            "grid": self.grid,
            "counts": self.counts,
            "link": self.link,
        }


@dataclass(frozen=True)
class Outcome:
    user: str
    status: str  # sent / already / failed / skipped
    changes: int = 0


def channel_of(target: DigestTarget) -> Channel:
    if target.dingtalk:
        return DingTalk(target.dingtalk, target.secret)
    if target.wecom:
        return WeCom(target.wecom)
    return JsonWebhook(str(target.webhook))


def send_digests(
    settings: Settings,
    *,
    day: dt.date | None = None,
    notifier: Notifier | None = None,
    titles: dict[str, str] | None = None,
) -> list[Outcome]:
    """Send each configured worker the digest of ``day`` (today, in the unit's time zone), once."""
    from desk._app import _titles
    from store import make_engine

    engine = make_engine(settings.resolved_database_url)
    create_tables(engine, TABLES)
    snapshot = Snapshot(engine)
    notifier = notifier or Notifier()
    titles = _titles() if titles is None else titles
    day = day or local_time(utc_now(), settings.timezone).date()
    worked = grids(engine)
    with Session(engine) as session:
        users = {u.name: u for u in session.exec(select(StaffUser))}
    outcomes = []
    for name, target in settings.desk_digests.items():
        user, grid = users.get(name), worked.get(name)
        if user is None or user.disabled or user.scope is None or grid is None:
            logger.warning("每日变动推送：{} {}，不推送", name, _unfit(user, grid, name))
            outcomes.append(Outcome(name, "skipped"))
            continue
        outcomes.append(
            _send_one(settings, snapshot, notifier, titles, name, user.scope, grid, channel_of(target), day)
        )
    return outcomes


def _unfit(user: StaffUser | None, grid: str | None, name: str) -> str:
    if user is None:
        return "不是查询台用户：先 harvest desk add-user，或从 HARVEST_DESK_DIGESTS 删去它"
    if user.disabled:
        return "已停用"
    if user.scope is None:
        return "是管理员，没有社区：推送只给有社区的工作人员"
    return f"没有设网格：运行 harvest desk set-grid {name} 网格名"


def _send_one(
    settings: Settings,
    snapshot: Snapshot,
    notifier: Notifier,
    titles: dict[str, str],
    user: str,
    scope: str,
    grid: str,
    channel: Channel,
    day: dt.date,
) -> Outcome:
    engine = snapshot.engine
    with Session(engine) as session:
        if session.get(SentDigest, (user, day)) is not None:
            return Outcome(user, "already")
        until = min(utc_now(), _day_end(day, settings.timezone))
        previous = session.exec(
            select(SentDigest.until)
            .where(SentDigest.user == user, SentDigest.until < until)
            .order_by(SentDigest.until.desc())  # type: ignore[attr-defined]
            .limit(1)
        ).first()
    since = _aware(previous) if previous is not None else until - dt.timedelta(hours=24)
    found = changes_since(snapshot, since, scope=scope, grid=grid, until=until).of(grid)
    community = Places(settings.communities).community(scope)
    link = f"{settings.desk_url.rstrip('/')}/changes?grid={quote(grid)}&since={_local_day(since, settings)}"
    title, text = compose(found, f"{community} {grid}", since, until, link, titles, settings.timezone)
    digest = Digest(user, scope, grid, day, {kind: len(getattr(found, kind)) for kind, _ in KINDS}, link)
    if not _deliver(notifier, channel, digest, title, text, user):
        return Outcome(user, "failed", found.total)
    with Session(engine) as session:
        session.add(SentDigest(user=user, day=day, until=until, changes=found.total))
        session.commit()
    snapshot.audit(
        Access(actor=ACTOR),
        ACTOR,
        None,
        {"to": user, "grid": grid, "day": day.isoformat(), "channel": channel.where()},
        found.total,
    )
    logger.info(
        "每日变动推送：{} 的 {} 条变动已发到 {}（{}）", user, found.total, channel.name, channel.where()
    )
    return Outcome(user, "sent", found.total)


def _deliver(notifier: Notifier, channel: Channel, digest: Digest, title: str, text: str, user: str) -> bool:
    """One message through the notifier's delivery: its retries, refusals and masked logging."""
    import httpx

    with httpx.Client(timeout=notifier.timeout) as client:
        return notifier.deliver(client, channel, digest, title, text, f"每日变动推送（{user}）")


def compose(
    found: GridChanges,
    where: str,
    since: dt.datetime,
    until: dt.datetime,
    link: str,
    titles: dict[str, str],
    timezone: str,
) -> tuple[str, str]:
    """A digest's title and Markdown: counts, the first few of each kind, the link to the rest. The
    title starts as every alert's does (【数据采集】), so a DingTalk robot's keyword lets both through."""
    title = f"【数据采集】每日变动 · {where}"
    span = (
        f"{local_time(since, timezone):%m-%d %H:%M} 至 {local_time(until, timezone):%m-%d %H:%M}"
        f"（{zone_label(timezone)}）"
    )
    if not found.total:
        return title, f"### {title}\n\n今日无变动（{span}）。\n\n[在查询台查看]({link})"
    lines = [f"### {title}", f"{span}："]
    for kind, words in KINDS:
        items: list[Changed] = getattr(found, kind)
        if items:
            shown = "；".join(_item(kind, c, titles) for c in items[:FIRST])
            more = f" 等 {len(items)} 条" if len(items) > FIRST else ""
            lines.append(f"- **{words} {len(items)} 条**：{shown}{more}")
    lines.append(f"[在查询台查看全部变动]({link})")
    return title, "\n\n".join(lines)


def _item(kind: str, change: Changed, titles: dict[str, str]) -> str:
    who = change.name or (f"户号 {change.household}" if change.household else "一条记录")
    about = titles.get(change.dataset, change.dataset)
    if kind == "changed":
        about = "，".join(f"{f.label} {_value(f.before)} → {_value(f.after)}" for f in change.fields)
    elif kind == "tagged":
        about = "、".join(change.new_tags)
    return f"{who}（{about}）"


def _value(value: object) -> str:
    return "（空）" if value is None or value == "" else str(value)


def _day_end(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone(timezone)).astimezone(dt.UTC)


def _local_day(moment: dt.datetime, settings: Settings) -> str:
    return local_time(moment, settings.timezone).date().isoformat()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite hands them back naive
