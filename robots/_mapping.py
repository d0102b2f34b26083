"""Which header, label or JSON key holds which field: read from the record class itself.

A robot may still spell the mapping out (``{"身份证号": "id_number"}``), but the record already
says it: each field's ``title`` is the header staff read, and ``aliases`` are the other texts a
system (or its next version) uses for it. A JSON key or spreadsheet header also matches the field's
own name and its camelCase (``archive_no``, ``archiveNo``). Every field must be found, or the
layout has changed, except the field with role ``community``, which the account's scope fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TypeAlias

from store import Record, record_spec

# What a robot hands a reader: its own {header: field} mapping, or the record class that carries one.
Columns: TypeAlias = Mapping[str, str] | type[Record]


@dataclass(frozen=True)
class Source:
    """One field as a page or an API names it: any of ``names`` (the first is the one messages show)."""

    field: str
    names: tuple[str, ...]
    required: bool = True


def header_sources(columns: Columns) -> tuple[Source, ...]:
    """The fields a table or card is read into, named by the texts a person sees (titles, aliases)."""
    if not isinstance(columns, type):
        return tuple(Source(field, (header,)) for header, field in columns.items())
    return _from_record(columns, keys=False)


def key_sources(columns: Columns) -> tuple[Source, ...]:
    """The fields a JSON object or a spreadsheet row is read into: by key, field name, title or alias."""
    if not isinstance(columns, type):
        return tuple(Source(field, (key,)) for key, field in columns.items())
    return _from_record(columns, keys=True)


@cache
def _from_record(model: type[Record], *, keys: bool) -> tuple[Source, ...]:
    sources = []
    for column in record_spec(model).columns:
        titled = (column.label,) if column.label != column.name else ()
        names = (*column.aliases, column.name, _camel(column.name), *titled) if keys else (
            *(titled or (column.name,)),
            *column.aliases,
        )
        sources.append(Source(column.name, tuple(dict.fromkeys(names)), column.role != "community"))
    return tuple(sources)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def missing(sources: tuple[Source, ...], found: Mapping[str, object]) -> list[str]:
    """The first name of each required field none of whose names is in ``found``."""
    return [s.names[0] for s in sources if s.required and not any(n in found for n in s.names)]


def pick(sources: tuple[Source, ...], found: Mapping[str, object]) -> dict[str, str]:
    """Each field's name as ``found`` spells it, for the fields it has."""
    chosen = {}
    for source in sources:
        name = next((n for n in source.names if n in found), None)
        if name is not None:
            chosen[source.field] = name
    return chosen
