"""What the desk's pages show, shaped from the snapshot's DataFrames: plain data for the templates.

Nothing here decides masking or scope: the snapshot masks by default and the caller passes the
user's scope; this module only groups and labels what came back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import machine
from desk._links import Sealer
from store import REF_COLUMN, Access, DatasetInfo, Freshness, Snapshot

SEARCH_LIMIT = 50  # persons on one result page; more asks for a narrower search
# Roles staff filter a dataset by; community only matters to admins, who see every community.
FILTER_ROLES = ("community", "grid", "tags")


@dataclass(frozen=True)
class DatasetView:
    """A dataset as the desk reads it: its fields in order, their Chinese labels and roles."""

    name: str
    title: str
    columns: list[str]
    labels: dict[str, str]
    roles: dict[str, str]

    @classmethod
    def of(cls, info: DatasetInfo, titles: dict[str, str]) -> DatasetView:
        return cls(
            name=info.name,
            title=titles.get(info.name, info.name),
            columns=json.loads(info.columns),
            labels=json.loads(info.labels),
            roles=json.loads(info.roles),
        )

    def field(self, role: str) -> str | None:
        """The first field of ``role``, if the dataset has one."""
        return next((f for f, r in self.roles.items() if r == role), None)

    def label(self, name: str) -> str:
        return self.labels.get(name) or name


@dataclass(frozen=True)
class Card:
    """One record as label/value pairs, with where it links to."""

    dataset: str
    title: str
    fields: list[tuple[str, str]]
    person: str | None = None  # sealed link token
    household: str | None = None
    flags: str = ""


@dataclass
class PersonHit:
    """One person found by a search, merged from every dataset that knows them."""

    token: str
    name: str = ""
    id_number: str = ""
    phone: str = ""
    address: str = ""
    household: str | None = None
    tags: str = ""
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchResult:
    persons: list[PersonHit]
    others: list[Card]  # records that name no person (a household by its head and address)
    more: bool  # the result was cut at SEARCH_LIMIT


def text(value: Any) -> str:
    """A cell as staff read it: missing values blank, whole numbers without ``.0``, dates plain."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return local_time(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else local_time(value.to_pydatetime())
    return str(value)


def local_time(moment: dt.datetime, zone: str | None = None) -> str:
    """A time as staff read it, in the unit's zone (Beijing time unless HARVEST_TIMEZONE says else)."""
    return f"{machine.local_time(moment, zone):%Y-%m-%d %H:%M}"


def catalog(snapshot: Snapshot, titles: dict[str, str]) -> dict[str, DatasetView]:
    return {info.name: DatasetView.of(info, titles) for info in snapshot.datasets()}


def cards(view: DatasetView, frame: pd.DataFrame, sealer: Sealer) -> list[Card]:
    """Every row of ``frame`` (from ``Snapshot.query``) as a card."""
    household_field = view.field("household")
    out = []
    for row in frame.to_dict(orient="records"):
        ref = row.get(REF_COLUMN)
        out.append(
            Card(
                dataset=view.name,
                title=view.title,
                fields=[(view.label(c), text(row.get(c))) for c in view.columns],
                person=sealer.seal(ref) if isinstance(ref, str) and ref else None,
                household=text(row.get(household_field)) or None if household_field else None,
                flags=flag_text(text(row.get("flags")), view),
            )
        )
    return out


def flag_text(flags: str, view: DatasetView) -> str:
    """The store's data flags in words: ``invalid_id_number:id_number`` -> 身份证号校验未通过."""
    words = []
    for flag in filter(None, flags.split(",")):
        kind, _, field = flag.partition(":")
        what = {"invalid_id_number": "校验未通过"}.get(kind, kind)
        words.append(f"{view.label(field)}{what}" if field else what)
    return "；".join(words)


def search(
    snapshot: Snapshot,
    views: dict[str, DatasetView],
    query: str,
    scope: str | None,
    sealer: Sealer,
    access: Access,
) -> SearchResult:
    """Search every dataset with searchable fields; rows of one person (same ID number) merge."""
    persons: dict[str, PersonHit] = {}
    others: list[Card] = []
    more = False
    for name, frame in snapshot.search(query, scope=scope, limit=SEARCH_LIMIT + 1, access=access).items():
        view = views.get(name)
        if view is None:
            continue  # harvested since the catalog was read
        more |= len(frame) > SEARCH_LIMIT
        rows = frame.head(SEARCH_LIMIT).to_dict(orient="records")
        anonymous = []
        for row in rows:
            ref = row.get(REF_COLUMN)
            if not (isinstance(ref, str) and ref):
                anonymous.append(row)
                continue
            hit = persons.get(ref)
            if hit is None:
                if len(persons) >= SEARCH_LIMIT:
                    more = True
                    continue
                hit = persons[ref] = PersonHit(token=sealer.seal(ref))
            merge_into(hit, view, row)
        others += cards(view, pd.DataFrame(anonymous, columns=frame.columns), sealer)
    return SearchResult(list(persons.values()), others[:SEARCH_LIMIT], more or len(others) > SEARCH_LIMIT)


def merge_into(hit: PersonHit, view: DatasetView, row: dict[str, Any]) -> None:
    """Fill what the hit still lacks from one of its records; note the dataset as a source."""
    for role, attribute in (
        ("name", "name"),
        ("id_number", "id_number"),
        ("phone", "phone"),
        ("address", "address"),
        ("tags", "tags"),
    ):
        name = view.field(role)
        if name and not getattr(hit, attribute):
            setattr(hit, attribute, text(row.get(name)))
    household = view.field("household")
    if household and hit.household is None:
        hit.household = text(row.get(household)) or None
    if view.title not in hit.sources:
        hit.sources.append(view.title)


def table(view: DatasetView, frame: pd.DataFrame, sealer: Sealer) -> tuple[list[str], list[Card]]:
    """Headers and rows of a dataset page."""
    return [view.label(c) for c in view.columns], cards(view, frame, sealer)


@dataclass(frozen=True)
class FreshLine:
    title: str
    when: str  # "" when never harvested well
    stale: bool


def freshness(
    items: Iterable[Freshness], views: dict[str, DatasetView], max_age_hours: float, zone: str | None = None
) -> list[FreshLine]:
    lines = []
    label = machine.zone_label(zone)
    for item in items:
        title = views[item.dataset].title if item.dataset in views else item.dataset
        # 11-23 02:13（北京时间）: the year is plain, the clock is named
        when = f"{local_time(item.last_good, zone)[5:]}（{label}）" if item.last_good else ""
        stale = item.age_hours is None or item.age_hours > max_age_hours
        lines.append(FreshLine(title, when, stale))
    return lines


def comparable(view: DatasetView, catalog: dict[str, DatasetView]) -> list[str]:
    """Other datasets that name persons by ID number too: "not recorded in …" can compare with them."""
    if view.field("id_number") is None:
        return []
    return [name for name, other in catalog.items() if name != view.name and other.field("id_number")]


def tag_choices(values: Iterable[str]) -> list[str]:
    """Distinct tags from values like "独居老人,低保", in first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        for tag in value.replace("，", ",").split(","):
            if tag.strip():
                seen.setdefault(tag.strip(), None)
    return list(seen)
