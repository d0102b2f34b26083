"""Masking (脱敏) of personal data by role, applied wherever data leaves the snapshot.

PIPL treats ID numbers, names, phone numbers and home addresses as personal information; the desk,
exports and logs show them masked by default, in the shapes Chinese staff expect: 110101********1234,
138****5678, 张*, 东湖花园3栋****.

Whatever the input (short, blank, full-width, a number), a non-empty value of a masked role never
comes back whole: the output carries a mask and shows fewer of the value's characters than it has.
Masking an already masked value never shows more of it. Missing values (None, NaN, "") pass as they are.

Masking is decided per record, not per field: a masked ID number hides its eight birth-date digits and a
masked address its unit and room, so the fields that would give those back are masked with them. Declared
ones by role (``birth_date`` keeps the year, ``address_detail`` goes whole, ``id_derived`` -- a number
such as 残疾人证号 made from the ID number -- is masked like one); and every field without a role is
swept (``scrub_value``), so a robot that forgot one gives nothing back either: an ID number inside it,
or the record's birth date in any of the forms people write it (19380522, 1938-05-22, 1938/5/22,
1938年5月22日), is masked where it stands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, get_args

from store._idnumber import normalize_id_number
from store._record import Role

if TYPE_CHECKING:  # pandas and numpy cost a run's start-up a second: imported where frames are masked
    import numpy as np
    import pandas as pd

__all__ = [
    "MASKED_ROLES",
    "ROLES",
    "Role",
    "mask_address",
    "mask_frame",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_value",
    "scrub_value",
]

# The same roles as a record field's (store._record.Role).
ROLES: frozenset[str] = frozenset(get_args(Role))
# Household numbers, community and grid names identify no one on their own and the desk groups and
# scopes by them; tags (独居老人, 低保) are what staff look records up for; a relation to the head of
# household (户主, 子女) is one of a few words. They travel unmasked.
MASKED_ROLES: frozenset[str] = frozenset(
    {"id_number", "name", "phone", "address", "birth_date", "address_detail", "id_derived"}
)

# Typed on Chinese input methods, digits and letters often arrive full-width (U+FF01..U+FF5E), with
# the ideographic space; unmasked they would slip past the patterns below.
_HALF_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: 0x20}
_HAS_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")

# The common compound surnames, rarer ones, then traditional forms for Hong Kong, Macao and Taiwan
# residents' records. Pairs whose first character is a common surname on its own and whose second
# reads as a given name (单于, 乐正) are left out: misread, they would show a given-name character.
_COMPOUND_SURNAME_TEXT = """
欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 端木 独孤 南宫 西门
澹台 公冶 宗政 濮阳 淳于 申屠 闻人 万俟 呼延 赫连 拓跋 鲜于 闾丘 司空
歐陽 司馬 諸葛 東方 尉遲 公孫 長孫 軒轅 鍾離 獨孤 南宮 西門 聞人 萬俟 閭丘
"""
_COMPOUND_SURNAMES = frozenset(_COMPOUND_SURNAME_TEXT.split())

_MOBILE = re.compile(r"(?:\+?86|0086)?(1\d{10})", re.ASCII)
# Area codes starting 01/02 have three digits (010, 020-029), all others four: that is what splits
# an unseparated 057188123456. Behind +86 the trunk 0 is dropped.
_LANDLINE = re.compile(
    r"(?P<cc>\+?86|0086)?\(?(?P<area>0?(?:[12]\d|[3-9]\d{2}))\)?-?(?P<local>\d{7,8})"
    r"(?:(?:-|转|#|ext\.?|x)(?P<ext>\d{1,6}))?",
    re.IGNORECASE | re.ASCII,
)
_LOCAL_NUMBER = re.compile(r"\d{7,8}", re.ASCII)
_DASHES = str.maketrans("–—", "--")
_PHONE_SEPARATORS = str.maketrans("", "", "-()")
# A building is a number (Arabic, Chinese or a letter) followed by 栋, 幢 or 号楼. A bare 楼 is left
# out on purpose: "3楼" is the third floor.
_BUILDING = re.compile(r"[0-9A-Za-z一二三四五六七八九十百零〇两]+(?:栋|幢|号楼)")
_ADDRESS_MASK = "****"
# A birth date shows its year (an age says as much); month and day are the ID number's hidden digits.
_YEAR = re.compile(r"(?:18|19|20)\d{2}", re.ASCII)
_DATE_LENGTH = 8  # the shortest date that has a year, a month and a day: 19380522, 1938-5-2
# What the sweep looks for in a masked record's other fields: an ID number (a run of 17 digits and a
# check character, inside a longer number too), and dates, written run together or with separators.
_SWEPT = re.compile(
    r"(?P<id>\d{17}[\dXx])"
    r"|(?<!\d)(?P<year>(?:18|19|20)\d{2})"
    r"(?:(?P<month>\d{2})(?P<day>\d{2})|\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})(?:\s*日)?)(?!\d)",
    re.ASCII,
)
# Every ID number and every date the sweep masks has a year in it: four digits starting 1 or 2.
_SWEPT_HINT = re.compile(r"[12]\d{3}", re.ASCII)
_ID_RUN = re.compile(r"\d{17}[\dX]", re.ASCII)
_FIELD_SEPARATOR = "\x1f"
_ID_LENGTH = 18
_ISO_LENGTH = len("1938-05-22")


def _half_width(text: str) -> str:
    # str.translate costs a microsecond per call on CJK text; the search is five times cheaper.
    return text.translate(_HALF_WIDTH) if _HAS_FULL_WIDTH.search(text) else text


def _keep_ends(text: str, head: int, tail: int) -> str:
    """``text`` starred except ``head`` leading and ``tail`` trailing characters, never more than half."""
    budget = len(text) // 2
    while head + tail > budget:
        if head > tail:
            head -= 1
        else:
            tail -= 1
    return text[:head] + "*" * (len(text) - head - tail) + text[len(text) - tail :]


def _id_number(text: str) -> str:
    # The clean, common case skips the normaliser, which would cost twice the masking itself.
    if len(text) == 18 and text.isascii() and text[:17].isdigit():
        return text[:6] + "********" + text[14:].replace("x", "X")
    number = normalize_id_number(text)
    if len(number) == 18:
        # The national convention: region code and the last four stay, the birth date goes.
        return number[:6] + "********" + number[14:]
    # Old 15-digit numbers, typos and fragments: no convention, so no more than half is shown.
    return _keep_ends(number, 3, 2) or "*"


def _phone(text: str) -> str:
    if len(text) == 11 and text[0] == "1" and text.isascii() and text.isdigit():
        return text[:3] + "****" + text[7:]
    compact = "".join(_half_width(text).split()).translate(_DASHES)
    digits = compact.translate(_PHONE_SEPARATORS)
    mobile = _MOBILE.fullmatch(digits)
    if mobile:
        number = mobile.group(1)
        return number[:3] + "****" + number[7:]
    # Separators first, so an extension stays apart from the number; then without them, for 0571-8812-3456.
    landline = _LANDLINE.fullmatch(compact) or _LANDLINE.fullmatch(digits)
    if landline and (landline["cc"] or landline["area"].startswith("0")):
        local, ext = landline["local"], landline["ext"]
        masked = f"{landline['area']}-{'*' * (len(local) - 4)}{local[-4:]}"
        return masked + (f"-{'*' * len(ext)}" if ext else "")
    if _LOCAL_NUMBER.fullmatch(digits):
        return _keep_ends(digits, 0, 4)
    return _keep_ends(compact, 3, 4) or "*"


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" or char >= "\U00020000"


def _name(text: str) -> str:
    # A Chinese name shows only its surname, so full-width letters further on need no converting.
    name = text if text.isalpha() and _is_cjk(text[0]) else "".join(_half_width(text).split())
    if len(name) <= 1:
        return "*"
    if not _is_cjk(name[0]):
        # Latin-script names: the initial only, and a fixed mask that hides the length too.
        return name[0] + "***"
    keep = 2 if len(name) > 2 and name[:2] in _COMPOUND_SURNAMES else 1
    return name[:keep] + "*" * (len(name) - keep)


def _address(text: str) -> str:
    address = _half_width(text).strip()
    building = _BUILDING.search(address)
    if building and building.end() < len(address):
        return address[: building.end()] + _ADDRESS_MASK
    if building and building.start() > 0:
        # Nothing follows the building, so the building is the detail that identifies.
        return address[: building.start()] + _ADDRESS_MASK
    return address[: len(address) // 2] + _ADDRESS_MASK


def _birth_date(text: str) -> str:
    compact = "".join(_half_width(text).split())
    year = _YEAR.match(compact)
    if year and len(compact) >= _DATE_LENGTH:
        return year[0] + "-**-**"
    # No year and a month and a day to tell apart: nothing of it is safe to show.
    return "*"


def _address_detail(text: str) -> str:
    # A unit, a room, a house number: the very part a masked address hides.
    return _ADDRESS_MASK


def _id_derived(text: str) -> str:
    number = normalize_id_number(text)
    masked, found = _ID_RUN.subn(lambda run: _id_number(run[0]), number)
    return masked if found else _keep_ends(number, 3, 2) or "*"


_MASKERS: dict[str, Callable[[str], str]] = {
    "id_number": _id_number,
    "phone": _phone,
    "name": _name,
    "address": _address,
    "birth_date": _birth_date,
    "address_detail": _address_detail,
    "id_derived": _id_derived,
}
assert _MASKERS.keys() == MASKED_ROLES
# A household's members share its address and surnames repeat: in the sandbox a million persons have
# about 270,000 distinct names and 400,000 addresses. ID and phone numbers are all but unique.
_REPEATING_ROLES = frozenset({"name", "address", "birth_date", "address_detail"})


def _is_missing(value: object) -> bool:
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _masker_for(role: object) -> Callable[[str], str] | None:
    return _MASKERS.get(role) if isinstance(role, str) else None


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    import numpy as np

    # Spreadsheets hand phone and ID numbers over as numbers; 13812345678.0 must read as 13812345678.
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _mask_present(masker: Callable[[str], str], value: object) -> str:
    return masker(value) if isinstance(value, str) else masker(_as_text(value))


def _masked(masker: Callable[[str], str], value: Any) -> Any:
    if _is_missing(value) or (isinstance(value, str) and not value):
        return value
    return _mask_present(masker, value)


def mask_id_number(value: str) -> str:
    """身份证号: ``110101199003071234`` -> ``110101********1234``; other lengths show at most half."""
    return _masked(_id_number, value)


def mask_phone(value: str) -> str:
    """手机号 ``13812345678`` -> ``138****5678``; landline ``0571-88123456`` -> ``0571-****3456``."""
    return _masked(_phone, value)


def mask_name(value: str) -> str:
    """姓名: the surname stays ``王小明`` -> ``王**``, ``欧阳娜娜`` -> ``欧阳**``; ``John Smith`` -> ``J***``.

    A single character is all surname or all name, so it goes whole: ``张`` -> ``*``.
    """
    return _masked(_name, value)


def mask_address(value: str) -> str:
    """Kept down to the building (``东湖花园3栋2单元501室`` -> ``东湖花园3栋****``), else its first half."""
    return _masked(_address, value)


def mask_value(role: str | None, value: object) -> object:
    """``value`` masked as ``role`` requires; missing or empty values and unmasked or unknown roles pass."""
    masker = _masker_for(role)
    return value if masker is None else _masked(masker, value)


def _births(id_numbers: Iterable[object]) -> frozenset[str]:
    """The birth dates (``YYYYMMDD``) that ``id_numbers`` carry."""
    births = set()
    for value in id_numbers:
        if isinstance(value, str) and value:
            # The store keeps ID numbers normalised: the normaliser is for values from elsewhere.
            number = value if len(value) == _ID_LENGTH and value.isascii() else normalize_id_number(value)
            if len(number) == _ID_LENGTH and number[:17].isdigit():
                births.add(number[6:14])
    return frozenset(births)


def _scrubbed(text: str, births: frozenset[str]) -> str:
    def masked(found: re.Match[str]) -> str:
        if found["id"]:
            return _id_number(found["id"])
        month, day = found["month"] or found["m"], found["day"] or found["d"]
        if f"{found['year']}{int(month):02d}{int(day):02d}" in births:
            return found["year"] + "-**-**"
        return found[0]  # another date (signed, issued, founded) says nothing of the ID number

    return _SWEPT.sub(masked, text)


def scrub_value(value: object, id_numbers: Iterable[object]) -> object:
    """A value of a masked record's field that has no masked role, as it may leave the store: an ID
    number inside it masked, and the birth date of the record's ``id_numbers`` in any written form kept
    to its year. A value with neither passes as it is (a date stays a date)."""
    if _is_missing(value) or (isinstance(value, str) and not value):
        return value
    text = _as_text(value)
    scrubbed = _scrubbed(text, _births(id_numbers))
    return value if scrubbed == text else scrubbed


def _texts(series: pd.Series) -> np.ndarray:
    """A column's values as text ("" for missing), for the sweep to read in one pass."""
    import numpy as np
    import pandas as pd

    if series.dtype != object and not isinstance(series.dtype, pd.StringDtype):
        return series.astype(str).to_numpy(dtype=object)  # numbers, datetimes: one vectorised call
    values = series.to_numpy(dtype=object)
    try:
        _FIELD_SEPARATOR.join(values)  # the common column: text only, and no copy is needed
    except TypeError:
        return np.array(["" if _is_missing(v) else _as_text(v) for v in values], dtype=object)
    return values


def _swept_series(series: pd.Series, births_of: Callable[[int], frozenset[str]]) -> pd.Series | None:
    """``series`` swept as ``scrub_value`` sweeps one value, or None when nothing in it needs masking.

    The column is read by one pass of a cheap pattern over its values joined (a searched character
    class is what Python's ``re`` scans fastest); only the values it points at are read in full.
    Nearly every column has no ID number and no date in it, and per-value calls cost ten times as much.
    """
    import numpy as np
    import pandas as pd

    texts = _texts(series)
    hints = [found.start() for found in _SWEPT_HINT.finditer(_FIELD_SEPARATOR.join(texts))]
    if not hints:
        return None
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)
    out = series.to_numpy(dtype=object).copy()
    changed = False
    for row in np.unique(np.searchsorted(ends, hints, side="right")).tolist():
        text, births = texts[row], births_of(row)
        if len(text) < _ID_LENGTH and not any(birth[:4] in text for birth in births):
            continue  # too short for an ID number and not the birth year: a signing date, a fee
        if len(text) == _ISO_LENGTH and text[4] == text[7] == "-":
            # A date column read back as 1938-05-22: five times cheaper than the pattern's callback.
            iso = text[:4] + text[5:7] + text[8:]
            scrubbed = text[:4] + "-**-**" if iso in births else text
        else:
            scrubbed = _scrubbed(text, births)
        if scrubbed != text:
            out[row], changed = scrubbed, True
    return pd.Series(out, index=series.index, name=series.name, dtype=object) if changed else None


def _mask_series(series: pd.Series, role: str) -> pd.Series:
    import numpy as np
    import pandas as pd

    masker = _MASKERS[role]
    values = series.to_numpy(dtype=object)
    # Missing cells keep exactly what they held (None stays None, NaN stays NaN), empty strings too.
    present = ~pd.isna(values) & (values != "")
    if not present.any():
        return series.copy()
    todo = values[present]
    out = values.copy()
    if role in _REPEATING_ROLES:
        # Each distinct value is masked once; for nearly unique columns the factorising would cost more.
        codes, uniques = pd.factorize(todo)
        out[present] = np.array([_mask_present(masker, v) for v in uniques], dtype=object)[codes]
    else:
        out[present] = [_mask_present(masker, v) for v in todo]
    dtype = series.dtype if isinstance(series.dtype, pd.StringDtype) else object
    return pd.Series(out, index=series.index, name=series.name, dtype=dtype)


def mask_frame(frame: pd.DataFrame, roles: Mapping[str, str], *, keep: Collection[str] = ()) -> pd.DataFrame:
    """A copy of ``frame`` in which every column whose role (``roles[column]``) is masked is masked,
    and every column without a role is swept row by row as ``scrub_value`` sweeps a value of that row.

    ``frame`` itself is untouched; columns named in ``keep`` (a caller's own link column) pass as they
    are. Roles naming no column of ``frame`` are ignored, so one mapping serves every projection.
    """
    out = frame.copy()
    ids = [
        frame.iloc[:, p].to_numpy(dtype=object)
        for p, c in enumerate(frame.columns)
        if roles.get(c) == "id_number"
    ]

    def births_of(row: int) -> frozenset[str]:
        return _births(column[row] for column in ids)

    for position, column in enumerate(frame.columns):
        role = roles.get(column)
        if role in MASKED_ROLES:
            out.isetitem(position, _mask_series(frame.iloc[:, position], role))
        elif role is None and column not in keep and len(frame):
            # Fields of a declared unmasked role (household numbers, grids, tags) are what they say.
            swept = _swept_series(frame.iloc[:, position], births_of)
            if swept is not None:
                out.isetitem(position, swept)
    return out
