"""Masking of personal data by role: the shapes staff expect, and no value ever leaving whole."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from store._masking import (
    MASKED_ROLES,
    ROLES,
    Role,
    mask_address,
    mask_frame,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_value,
    scrub_value,
)

MASKERS = {
    "id_number": mask_id_number,
    "phone": mask_phone,
    "name": mask_name,
    "address": mask_address,
    "birth_date": lambda value: mask_value("birth_date", value),
    "address_detail": lambda value: mask_value("address_detail", value),
    "id_derived": lambda value: mask_value("id_derived", value),
}


@pytest.mark.parametrize(
    ("mask", "value", "masked"),
    [
        (mask_id_number, "110101199003071234", "110101********1234"),
        (mask_phone, "13812345678", "138****5678"),
        (mask_phone, "0571-88123456", "0571-****3456"),
        (mask_name, "张三", "张*"),
        (mask_name, "王小明", "王**"),
        (mask_name, "欧阳娜娜", "欧阳**"),
        (mask_name, "司马光", "司马*"),
        (mask_name, "张", "*"),
        (mask_name, "John Smith", "J***"),
        (mask_address, "东湖花园3栋2单元501室", "东湖花园3栋****"),
        (mask_address, "杭州市西湖区文三路100号5幢302室", "杭州市西湖区文三路100号5幢****"),
    ],
)
def test_the_documented_examples(mask, value: str, masked: str) -> None:
    assert mask(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("11010119900307123x", "110101********123X"),  # a lower-case check character
        (" 110101 19900307 1234 ", "110101********1234"),  # typed with spaces
        ("１１０１０１１９９００３０７１２３４", "110101********1234"),  # full-width digits
        ("110101900307123", "110**********23"),  # an old 15-digit number: no more than half shows
        ("1101011990", "110*****90"),
        ("12", "1*"),
        ("1", "*"),
        ("   ", "*"),
    ],
)
def test_id_numbers_of_every_shape(value: str, masked: str) -> None:
    assert mask_id_number(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("138 1234 5678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("１３８１２３４５６７８", "138****5678"),
        ("(0571)88123456", "0571-****3456"),
        ("（０５７１）８８１２３４５６", "0571-****3456"),
        ("057188123456", "0571-****3456"),  # an unseparated four-digit area code
        ("01088123456", "010-****3456"),  # ... and a three-digit one
        ("0571-8812-3456", "0571-****3456"),
        ("0571-8812345", "0571-***2345"),
        ("0571-88123456转801", "0571-****3456-***"),
        ("88123456", "****3456"),  # a local number alone shows no more than half
        ("8812345", "****345"),
        ("95588", "9***8"),
    ],
)
def test_phone_numbers_of_every_shape(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


COMMON_COMPOUND_SURNAMES = (
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 端木 独孤 南宫 西门"
)


@pytest.mark.parametrize("surname", COMMON_COMPOUND_SURNAMES.split())
def test_a_compound_surname_stays_whole(surname: str) -> None:
    assert mask_name(surname + "光") == surname + "*"
    assert mask_name(surname + "娜娜") == surname + "**"
    # Alone it is the whole value, so it cannot stay whole.
    assert mask_name(surname) == surname[0] + "*"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("歐陽娜娜", "歐陽**"),  # traditional characters
        ("钟小明", "钟**"),  # 钟 alone is a surname; only 钟离 is compound
        ("马司光", "马**"),
        ("王小明明", "王***"),
        (" 张 三 ", "张*"),
        ("阿依古丽·买买提", "阿*******"),
        ("Ｊｏｈｎ Ｓｍｉｔｈ", "J***"),
        ("  john", "j***"),
        ("Al", "A***"),
        ("J", "*"),
        ("\u3000", "*"),
    ],
)
def test_names_of_every_shape(value: str, masked: str) -> None:
    assert mask_name(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("望京SOHO 3号楼1201", "望京SOHO 3号楼****"),
        ("东湖花园十二幢三单元302室", "东湖花园十二幢****"),
        ("东湖花园３栋２单元５０１室", "东湖花园3栋****"),
        ("东湖花园3栋", "东湖花园****"),  # nothing after the building: the building goes too
        ("银杏家园临街商铺4号", "银杏家园临****"),  # no building: the first half stays
        ("文三路大厦3楼", "文三路****"),  # 3楼 is a floor, not a building
        ("3栋", "3****"),
        ("路", "****"),
        (" ", "****"),
    ],
)
def test_addresses_of_every_shape(value: str, masked: str) -> None:
    assert mask_address(value) == masked


def test_roles() -> None:
    assert set(get_args(Role)) == ROLES
    assert {
        "id_number",
        "name",
        "phone",
        "address",
        "birth_date",
        "address_detail",
        "id_derived",
    } == MASKED_ROLES


@pytest.mark.parametrize("role", sorted(MASKED_ROLES))
@pytest.mark.parametrize("missing", [None, "", math.nan, pd.NA, np.float64("nan")])
def test_missing_and_empty_values_pass_unchanged(role: str, missing: object) -> None:
    assert mask_value(role, missing) is missing
    assert MASKERS[role](missing) is missing  # type: ignore[arg-type]


@pytest.mark.parametrize("role", [None, "household", "community", "idnumber", "ID_NUMBER"])
def test_unmasked_and_unknown_roles_pass_unchanged(role: str | None) -> None:
    for value in ("110101199003071234", 13812345678, None):
        assert mask_value(role, value) is value


@pytest.mark.parametrize(
    ("role", "value", "masked"),
    [
        ("birth_date", "1938-05-22", "1938-**-**"),
        ("birth_date", dt.date(1938, 5, 22), "1938-**-**"),
        ("birth_date", "19380522", "1938-**-**"),
        ("birth_date", "1938年5月22日", "1938-**-**"),
        ("birth_date", "1938/5/22", "1938-**-**"),
        ("birth_date", "5月22日", "*"),  # no year to keep
        ("address_detail", "601", "****"),
        ("address_detail", "2单元", "****"),
        ("id_derived", "33010219380522457X21", "330102********457X21"),  # 残疾人证号: the ID and two digits
        ("id_derived", "CJ330102193805224571", "CJ330102********4571"),
        ("id_derived", "CJ12345678", "CJ1*****78"),
    ],
)
def test_fields_that_would_give_a_masked_id_or_address_back(role: str, value: object, masked: str) -> None:
    assert mask_value(role, value) == masked


@pytest.mark.parametrize(
    ("value", "swept"),
    [
        ("生于1938年5月22日", "生于1938-**-**"),
        ("19380522", "1938-**-**"),
        ("1938/5/22 入住", "1938-**-** 入住"),
        ("1938-05-22 00:00:00", "1938-**-** 00:00:00"),
        (dt.date(1938, 5, 22), "1938-**-**"),
        ("证号33010219380522457X21", "证号330102********457X21"),  # any ID number, whoever's
        ("签约 2019-06-15", "签约 2019-06-15"),  # another date tells nothing
        ("1938", "1938"),
        (20190615, 20190615),
    ],
)
def test_a_masked_records_other_fields_are_swept_for_its_birth_date_and_id_numbers(
    value: object, swept: object
) -> None:
    assert scrub_value(value, ["33010219380522457X"]) == swept


def test_mask_frame_sweeps_fields_without_a_role_by_each_rows_own_id_number() -> None:
    frame = pd.DataFrame(
        {
            "id_number": ["33010219380522457X", "330102194001011234", None],
            "note": ["1938-05-22 生", "1938-05-22 生", "1938-05-22 生"],
            "signed": [dt.date(1938, 5, 22), dt.date(2019, 1, 1), None],
            "_ref": ["33010219380522457X", "330102194001011234", None],
        }
    )
    masked = mask_frame(frame, {"id_number": "id_number"}, keep=("_ref",))
    assert masked["note"].tolist() == ["1938-**-** 生", "1938-05-22 生", "1938-05-22 生"]
    assert masked["signed"].tolist() == ["1938-**-**", dt.date(2019, 1, 1), None]
    assert masked["_ref"].tolist() == frame["_ref"].tolist()


def test_mask_value_dispatches_by_role_and_reads_numbers_as_text() -> None:
    assert mask_value("id_number", "110101199003071234") == "110101********1234"
    assert mask_value("name", "司马光") == "司马*"
    assert mask_value("address", "东湖花园3栋2单元501室") == "东湖花园3栋****"
    # Spreadsheets hand phone numbers over as integers or floats.
    assert mask_value("phone", 13812345678) == "138****5678"
    assert mask_value("phone", 13812345678.0) == "138****5678"
    assert mask_value("phone", np.int64(13812345678)) == "138****5678"
    assert mask_value("id_number", 110101199003071234) == "110101********1234"


# Random strings of 1 to 25 characters over alphabets that tempt each masker: ASCII and full-width
# digits, phone punctuation, Chinese names and addresses, Latin names, and whitespace of every kind.
# "*" is left out: a value already made of stars may come back as it went in.
ALPHABETS = {
    "digits": "0123456789",
    "full-width": "０１２３４５６７８９ｘＸ　",
    "phone": "0123456789-+() 转#x",
    "chinese": "张王欧阳司马光娜明小东湖花园栋幢号楼单元室路区市〇一二三",
    "latin": "abcXYZ .'-",
    "mixed": "0１a张 \t\u3000\u00a0-·#栋x（）,",
}


def _samples(alphabet: str) -> list[str]:
    rng = random.Random(alphabet)
    return [
        "".join(rng.choice(alphabet) for _ in range(length)) for length in range(1, 26) for _ in range(40)
    ]


def _shown(text: str) -> int:
    """How many characters of ``text`` say something: neither a mask nor whitespace."""
    return sum(1 for c in text if c != "*" and not c.isspace())


@pytest.mark.parametrize("alphabet", ALPHABETS.values(), ids=ALPHABETS.keys())
@pytest.mark.parametrize("role", sorted(MASKED_ROLES))
def test_no_value_of_1_to_25_characters_comes_back_whole(role: str, alphabet: str) -> None:
    mask = MASKERS[role]
    for value in _samples(alphabet):
        masked = mask(value)
        assert masked != value and "*" in masked, (value, masked)
        content = "".join(value.split())
        assert _shown(masked) < len(content) or _shown(masked) == 0 == len(content), (value, masked)
        # Masking what is already masked never shows more.
        assert _shown(mask(masked)) <= _shown(masked), (value, masked)


def _frame() -> pd.DataFrame:
    index = pd.Index([10, 20, 30, 40], name="person_id")
    return pd.DataFrame(
        {
            # Left to itself pandas would make this column str, and None and NaN both NaN.
            "name": pd.Series(["张三", None, "欧阳娜娜", math.nan], index=index, dtype=object),
            "id_number": pd.Series(["110101199003071234", "", None, "11010119900307123X"], index=index),
            "phone": [13812345678, 13987654321, 15000000000, 18600000000],
            "address": ["东湖花园3栋2单元501室", "东湖花园3栋2单元502室", "东湖花园3栋2单元501室", None],
            "household_no": ["010000001", "010000002", "010000001", "010000003"],
            "gender": ["男", "女", "女", "男"],
        },
        index=index,
    )


ROLE_OF = {
    "name": "name",
    "id_number": "id_number",
    "phone": "phone",
    "address": "address",
    "household_no": "household",
    "not_a_column": "name",
}


def test_mask_frame_masks_a_copy_and_only_the_masked_roles() -> None:
    frame = _frame()
    before = frame.copy()
    masked = mask_frame(frame, ROLE_OF)

    pd.testing.assert_frame_equal(frame, before)
    assert list(masked.columns) == list(frame.columns)
    pd.testing.assert_index_equal(masked.index, frame.index)
    assert masked["name"].tolist()[0::2] == ["张*", "欧阳**"]
    assert masked["id_number"].tolist()[0::3] == ["110101********1234", "110101********123X"]
    assert masked["phone"].tolist() == ["138****5678", "139****4321", "150****0000", "186****0000"]
    assert masked["address"].tolist()[:3] == ["东湖花园3栋****"] * 3
    # An unmasked role and a column without a role travel as they are.
    pd.testing.assert_series_equal(masked["household_no"], frame["household_no"])
    pd.testing.assert_series_equal(masked["gender"], frame["gender"])


def test_mask_frame_keeps_missing_values_and_string_dtypes() -> None:
    frame = _frame()
    masked = mask_frame(frame, ROLE_OF)
    assert masked["name"].dtype == object
    assert masked["name"].iloc[1] is None
    assert isinstance(masked["name"].iloc[3], float) and math.isnan(masked["name"].iloc[3])
    assert masked["id_number"].dtype == frame["id_number"].dtype
    assert masked["id_number"].iloc[1] == ""
    assert pd.isna(masked["id_number"].iloc[2])
    assert masked["address"].iloc[3] is None or pd.isna(masked["address"].iloc[3])
    assert masked["address"].isna().tolist() == frame["address"].isna().tolist()


def test_mask_frame_with_repeated_column_names_and_no_rows() -> None:
    frame = pd.DataFrame([["张三", "13812345678"]], columns=["name", "name"])
    assert mask_frame(frame, {"name": "name"}).iloc[0].tolist() == ["张*", "1***"]
    empty = _frame().iloc[:0]
    pd.testing.assert_frame_equal(mask_frame(empty, ROLE_OF), empty, check_dtype=False)


def test_mask_frame_on_200_000_rows() -> None:
    rows = 200_000
    numbers = pd.Series(np.arange(rows)).astype(str).str.zfill(8)
    frame = pd.DataFrame(
        {
            "id_number": "3301021990" + numbers,
            "phone": "138" + numbers,
            "name": pd.Series(["王小明", "欧阳娜娜", "张三", "李四", None] * (rows // 5)),
            "address": "东湖花园" + (numbers.str[-2:]) + "栋1单元" + numbers.str[-3:] + "室",
        }
    )
    masked = mask_frame(frame, {column: column for column in frame.columns})
    assert masked["id_number"].iloc[12345] == "330102********2345"
    assert masked["phone"].iloc[12345] == "138****2345"
    assert masked["name"].tolist()[:4] == ["王**", "欧阳**", "张*", "李*"]
    assert masked["name"].isna().sum() == rows // 5
    assert masked["address"].iloc[12345] == "东湖花园45栋****"
    for column in frame.columns:
        assert masked[column].dropna().str.contains("*", regex=False).all()
        assert not (masked[column] == frame[column]).any()
