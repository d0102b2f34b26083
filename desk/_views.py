"""What the desk's pages show, shaped from the snapshot's DataFrames: plain data for the templates.

Nothing here decides masking or scope: the snapshot masks by default and the caller passes the
user's scope; this module only groups and labels what came back.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

import machine
from desk._links import Sealer
from desk._places import Places
from store import AGE_COLUMN, REF_COLUMN, Access, Fields, Freshness, Snapshot, fields_of

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
    places: Places = field(default_factory=Places)

    @classmethod
    def of(cls, fields: Fields, name: str, titles: Mapping[str, str], places: Places) -> DatasetView:
        return cls(name, titles.get(name, name), fields.columns, fields.labels, fields.roles, places)

    @property
    def has_age(self) -> bool:
        return AGE_COLUMN in self.columns

    def shown(self, name: str, value: Any) -> str:
        """A field's value as staff read it: a community by its Chinese name."""
        shown = text(value)
        return self.places.community(shown) if self.roles.get(name) == "community" else shown

    def field(self, role: str) -> str | None:
        """The first field of ``role``, if the dataset has one."""
        return next((f for f, r in self.roles.items() if r == role), None)

    def label(self, name: str) -> str:
        return self.labels.get(name) or name


# What a record's card on a phone shows of it, by role; every field is a tap away (档案).
SUMMARY_ROLES = ("name", "id_number", "address", "tags")


@dataclass(frozen=True)
class Card:
    """One record as label/value pairs, with where it links to."""

    dataset: str
    title: str
    fields: list[tuple[str, str]]
    person: str | None = None  # sealed link token
    household: str | None = None
    flags: str = ""
    summary: dict[str, str] = field(default_factory=dict)  # role -> value, of SUMMARY_ROLES the dataset has
    age: str = ""  # years, from the birth year (store._joined); "" when the record has none

    @property
    def tags(self) -> list[str]:
        return tag_choices([self.summary.get("tags", "")])


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
    age: str = ""
    grid: str = ""
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


def catalog(snapshot: Snapshot, titles: Mapping[str, str], places: Places) -> dict[str, DatasetView]:
    """Every dataset as the desk reads it, with the fields it takes from the others (store.fields_of)."""
    infos = {info.name: info for info in snapshot.datasets()}
    return {
        name: DatasetView.of(fields_of(info, infos), name, titles, places) for name, info in infos.items()
    }


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
                fields=[(view.label(c), view.shown(c, row.get(c))) for c in view.columns],
                person=sealer.seal(ref) if isinstance(ref, str) and ref else None,
                household=text(row.get(household_field)) or None if household_field else None,
                flags=flag_text(text(row.get("flags")), view),
                summary={role: text(row.get(name)) for role in SUMMARY_ROLES if (name := view.field(role))},
                age=text(row.get(AGE_COLUMN)),
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
    grid = view.field("grid")
    hit.age = hit.age or text(row.get(AGE_COLUMN))
    hit.grid = hit.grid or (text(row.get(grid)) if grid else "")
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
    at: dt.datetime | None = None  # when, to find the oldest (the text's month-day order breaks at New Year)


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
        lines.append(FreshLine(title, when, stale, item.last_good))
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


# -- one household ---------------------------------------------------------------------------------

HEAD_RELATIONS = ("户主", "本人")  # what systems write as the head's relation to the head


@dataclass
class Member(PersonHit):
    """One person of a household, merged from every dataset that lists them there."""

    relation: str = ""  # 与户主关系


@dataclass(frozen=True)
class Household:
    address: str  # masked as the page is
    members: list[Member]  # the head first, when known
    records: list[Card]  # the household's records that name no person (户籍信息)


def household_datasets(snapshot: Snapshot) -> set[str]:
    """The datasets keyed by a household number: a household's own records (户籍信息)."""
    out = set()
    for info in snapshot.datasets():
        key, roles = json.loads(info.key), json.loads(info.roles)
        if len(key) == 1 and roles.get(key[0]) == "household":
            out.add(info.name)
    return out


def household(
    catalog: dict[str, DatasetView], frame: pd.DataFrame, sealer: Sealer, own: set[str]
) -> Household:
    """A household from ``Snapshot.household(refs=True)``: each person once, whatever datasets list
    them (merged by ID number), and the records naming the household but no person as cards. Its
    address and head's name come from its own record (of a dataset in ``own``), if it has one."""
    members: dict[str, Member] = {}
    records: list[Card] = []
    address = head = ""
    for name, rows in frame.groupby("dataset", sort=False):
        view = catalog.get(str(name))
        if view is None:
            continue  # harvested since the catalog was read
        anonymous = []
        for row in rows.to_dict(orient="records"):
            ref = row.get(REF_COLUMN)
            if isinstance(ref, str) and ref:
                member = members.setdefault(ref, Member(token=sealer.seal(ref)))
                merge_into(member, view, row)
                member.relation = member.relation or _cell(view, row, "relation")
                continue
            anonymous.append(row)
            if view.name in own:
                address = address or _cell(view, row, "address")
                head = head or _cell(view, row, "name")
        found = cards(view, pd.DataFrame(anonymous, columns=rows.columns), sealer)
        records += [replace(card, household=None) for card in found]  # no link to the page they are on
    people = list(members.values())
    address = address or next((m.address for m in people if m.address), "")
    return Household(address, head_first(people, head), records)


def head_first(members: list[Member], head: str) -> list[Member]:
    """The head of household first: the member whose relation says so, else the one the household's
    record names (``head``, masked as the members' names are: only when it names exactly one); the
    rest by age, eldest first, as a household register lists them."""
    heads = [m for m in members if m.relation in HEAD_RELATIONS]
    if not heads and head:
        named = [m for m in members if m.name == head]
        heads = named if len(named) == 1 else []
    rest = [m for m in members if m not in heads[:1]]
    rest.sort(key=lambda m: -int(m.age) if m.age.isdigit() else 1)
    return heads[:1] + rest


def _cell(view: DatasetView, row: dict[str, Any], role: str) -> str:
    name = view.field(role)
    return text(row.get(name)) if name else ""
