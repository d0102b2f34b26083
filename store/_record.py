"""What a robot's record is: a typed model whose fields carry a natural-key flag and a personal-data role."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from hashlib import blake2b
from operator import attrgetter
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict

from store._cells import converter
from store._idnumber import checked_id_number

# What personal data a field holds, which decides how it is masked (store._masking). Beside the ID
# number, name, phone and address: ``birth_date`` (its month and day are the ID number's hidden digits),
# ``address_detail`` (unit, room, house number: what a masked address hides) and ``id_derived`` (a
# number made from the ID number, such as 残疾人证号). The last five identify no one on their own;
# ``relation`` (与户主关系: 户主, 配偶, 子女) orders a household's members, its head first.
Role = Literal[
    "id_number",
    "name",
    "phone",
    "address",
    "birth_date",
    "address_detail",
    "id_derived",
    "household",
    "community",
    "grid",
    "tags",
    "relation",
]
SCALARS: tuple[type, ...] = (str, int, float, Decimal, bool, dt.date, dt.datetime)


class Record(BaseModel):
    """Base class of every harvested record: subclass it and declare typed fields with ``Field``.

    Cells convert themselves by their field's type before validation: ``1988年6月15日`` for a
    date, ``1,200.50元`` for a number, ``是``/``否`` for a bool, and ``-``, ``暂无``, an empty
    cell... as None for an optional field (see ``store._cells``).
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # One before-validator on each field that needs one, so a field that does not (a required
        # str) costs nothing; a model-wide validator cost twice as much per record, being called for all.
        added = False
        for info in cls.model_fields.values():
            if any(isinstance(m, _Cells) for m in info.metadata):
                continue  # inherited from a parent record, converter included
            convert = converter(*_unwrap(info.annotation))
            if convert is not None:
                info.metadata.append(_Cells(convert))
                added = True
        if added:
            cls.model_rebuild(force=True)


class _Cells(pydantic.BeforeValidator):
    """The converter of a record field's cells (``store._cells``), put on the field by ``Record``."""


def Field(
    default: Any = ...,
    *,
    key: bool = False,
    role: Role | None = None,
    title: str | None = None,
    aliases: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """A record field: ``key=True`` puts it in the natural key, ``role`` says what personal data it is.

    ``title`` is what staff read (and the header a table is read by); ``aliases`` are other header
    texts or JSON keys a system uses for the same field (a vendor's rename, absorbed by declaration).
    """
    if isinstance(aliases, str):
        raise RecordDeclarationError(f"aliases={aliases!r} 应是一组文字，如 aliases=({aliases!r},)")
    extra = {"key": key, "role": role, "aliases": list(aliases)}
    return pydantic.Field(default, title=title, json_schema_extra=extra, **kwargs)


@dataclass(frozen=True)
class Column:
    name: str
    type: type
    nullable: bool
    key: bool
    role: str | None
    label: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordSpec:
    """A record class read back as data: its columns, natural key and roles."""

    model: type[Record]
    columns: tuple[Column, ...]

    @cached_property  # read for every staged row
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.key)

    @cached_property  # read for every staged row
    def roles(self) -> dict[str, str]:
        return {c.name: c.role for c in self.columns if c.role}

    @cached_property  # read for every staged row
    def labels(self) -> dict[str, str]:
        return {c.name: c.label for c in self.columns}

    @cached_property  # read for every staged row
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def row(self, record: Record | dict[str, Any]) -> dict[str, Any]:
        """A validated row of plain values, its content hash, and flags such as an invalid ID number."""
        *values, digest, flags = next(self.rows([record]))
        return dict(zip(self.names, values, strict=True)) | {"content_hash": digest, "flags": flags}

    def rows(
        self, records: Iterable[Record | dict[str, Any]], *, lead: tuple[Any, ...] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """``row()`` for many records, as tuples ``(*lead, *values in names order, content_hash, flags)``.

        Staging calls this for every record of a run: records that already are instances of the
        model (the runtime validated them) are not validated again. A ``Decimal`` comes out as its
        text, which the store keeps as it is: a number column would turn ``1200.50`` into ``1200.5``.
        """
        model, names = self.model, self.names
        values_of = attrgetter(*names) if len(names) > 1 else (lambda m: (getattr(m, names[0]),))
        checked = [(i, name) for i, name in enumerate(names) if name in self.id_number_fields]
        digest = _text_hash if all(c.type is str for c in self.columns) else content_hash
        decimals = {i for i, c in enumerate(self.columns) if c.type is Decimal}
        for record in records:
            values = values_of(record if isinstance(record, model) else model.model_validate(record))
            flags = None
            for i, name in checked:
                value = values[i]
                if isinstance(value, str) and value:
                    number, valid = checked_id_number(value)
                    if number != value:
                        values = (*values[:i], number, *values[i + 1 :])
                    if not valid:  # kept, not dropped: the source says so
                        flags = f"{flags},invalid_id_number:{name}" if flags else f"invalid_id_number:{name}"
            hashed = digest(values)
            if decimals:
                values = tuple(str(v) if i in decimals and v is not None else v for i, v in enumerate(values))
            yield (*lead, *values, hashed, flags)

    @cached_property  # read for every staged row
    def id_number_fields(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "id_number")


def content_hash(values: Sequence[Any]) -> str:
    """A short stable digest of a record's values, so unchanged re-harvests write nothing."""
    # Unit separators keep "a|b" + "c" apart from "a" + "b|c"; NUL marks a missing value.
    # The digests are stored: this text must stay exactly as it is, or every record reads as changed.
    text = "\x1f".join(
        ["str:" + v if type(v) is str else "\x00" if v is None else f"{type(v).__name__}:{v}" for v in values]
    )
    return blake2b(text.encode(), digest_size=16).hexdigest()


def _text_hash(values: Sequence[Any]) -> str:
    """``content_hash`` for a record whose fields are all ``str``, in one join instead of a test per value.

    Pydantic hands a ``str`` field back as an exact ``str`` (a subclass or an enum member is
    converted), so ``"str:" + v`` is what ``content_hash`` writes for each; a ``None`` of an
    optional field makes the join fail and takes the general form.
    """
    try:
        text = "str:" + "\x1fstr:".join(values)
    except TypeError:
        return content_hash(values)
    return blake2b(text.encode(), digest_size=16).hexdigest()


class RecordDeclarationError(TypeError):
    """A record class the store cannot keep; the message names the field and the fix."""


def record_spec(model: type[Record]) -> RecordSpec:
    columns = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        python_type, nullable = _scalar(model, name, info.annotation)
        role, label = extra.get("role"), info.title or name
        if role is not None and role not in get_args(Role):
            # A misspelt role would silently skip masking: refuse it where it is written.
            known = ", ".join(get_args(Role))
            raise RecordDeclarationError(
                f"{model.__name__}.{name}：没有 {role!r} 这个角色；可用的角色：{known}"
            )
        aliases = tuple(extra.get("aliases") or ())  # type: ignore[arg-type]
        columns.append(Column(name, python_type, nullable, bool(extra.get("key")), role, label, aliases))  # type: ignore[arg-type]
    spec = RecordSpec(model, tuple(columns))
    if not spec.key:
        raise RecordDeclarationError(
            f"{model.__name__} 没有自然键：请把能识别一条记录的字段标为 Field(key=True)"
        )
    if any(c.nullable for c in columns if c.key):
        raise RecordDeclarationError(f"{model.__name__}：键字段不能是可选的（去掉 | None）")
    return spec


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """A field's type without its Optional, and whether it was Optional."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else annotation), True
    return annotation, False


def _scalar(model: type, name: str, annotation: Any) -> tuple[type, bool]:
    python_type, nullable = _unwrap(annotation)
    if python_type in SCALARS:
        return python_type, nullable
    allowed = ", ".join(t.__name__ for t in SCALARS)
    raise RecordDeclarationError(
        f"{model.__name__}.{name}：类型 {annotation!r} 无法存储；请用 {allowed}（或其中之一加 | None）"
    )
