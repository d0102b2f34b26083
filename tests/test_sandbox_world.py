"""The sandbox world: valid, unique, consistent and reproducible, checked row by row with scalar oracles."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from sandbox._world import REFERENCE_DATE, World, generate_world
from store import (
    id_number_birth_date,
    id_number_check_digit,
    id_number_gender,
    is_valid_id_number,
    normalize_id_number,
)

PERSONS = 20_000
COMMUNITIES = 5  # one more than the four named ones, to cover the generated fifth

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_is_valid(code: str) -> bool:
    """GB 32100-2015 oracle: 18 characters of the code alphabet, the last one the mod-31 check."""
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return False
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return code[17] == _USCC_CHARS[(31 - total % 31) % 31]


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def ages(frame: pd.DataFrame) -> pd.Series:
    return frame["birth_date"].map(lambda s: age_on(date.fromisoformat(s), REFERENCE_DATE))


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=11, persons=PERSONS, communities=COMMUNITIES)


# --- the ID-number oracle itself ---------------------------------------------------------------


def test_check_digit_matches_the_standards_examples() -> None:
    assert id_number_check_digit("11010519491231002") == "X"
    assert id_number_check_digit("44052418800101001") == "4"
    with pytest.raises(ValueError):
        id_number_check_digit("1101051949123100")


def test_normalize_id_number_full_width_lower_x_and_spaces() -> None:
    assert normalize_id_number("１１０１０５１９４９１２３１００２ｘ") == "11010519491231002X"
    assert normalize_id_number(" 110105 19491231 002x\n") == "11010519491231002X"
    assert is_valid_id_number("１１０１０５１９４９１２３１００２ｘ")


def test_is_valid_id_number_rejects_bad_numbers() -> None:
    assert is_valid_id_number("11010519491231002X")
    assert not is_valid_id_number("110105194912310021")  # wrong check digit
    body = "11010519490230002"  # 30 February
    assert not is_valid_id_number(body + id_number_check_digit(body))
    assert not is_valid_id_number("11010519491231002")  # 17 characters
    assert not is_valid_id_number("1101051949123100AX")


def test_birth_date_and_gender_read_from_the_number() -> None:
    assert id_number_birth_date("11010519491231002X") == date(1949, 12, 31)
    assert id_number_gender("11010519491231002X") == "女"
    assert id_number_gender("440524188001010014") == "男"
    with pytest.raises(ValueError):
        id_number_gender("110105194912310021")


# --- persons ------------------------------------------------------------------------------------


def test_person_count_and_communities(world: World) -> None:
    persons = world.persons
    assert len(persons) == PERSONS
    assert persons["person_id"].tolist() == list(range(1, PERSONS + 1))
    assert [(c.code, c.name) for c in world.communities[:4]] == [
        ("donghu", "东湖社区"),
        ("xiyuan", "西苑社区"),
        ("nanshan", "南山社区"),
        ("beichen", "北辰社区"),
    ]
    counts = persons["community"].value_counts()
    assert set(counts.index) == {c.code for c in world.communities}
    # "Roughly evenly": within a household's size of an equal share.
    assert (counts - PERSONS / COMMUNITIES).abs().max() <= 5
    for community in world.communities:
        grids = set(persons.loc[persons["community"] == community.code, "grid"])
        assert grids == set(community.grids)


def test_every_id_number_is_valid_and_unique(world: World) -> None:
    ids = world.persons["id_number"]
    invalid = [i for i in ids if not is_valid_id_number(i)]
    assert invalid == []
    assert ids.is_unique


def test_birth_date_and_gender_agree_with_the_number(world: World) -> None:
    persons = world.persons
    assert (
        persons["id_number"].map(lambda i: id_number_birth_date(i).isoformat()).equals(persons["birth_date"])
    )
    assert persons["id_number"].map(id_number_gender).equals(persons["gender"])


def test_migrants_carry_birthplaces_of_other_provinces(world: World) -> None:
    local = world.persons["id_number"].str[:2] == "33"
    migrant = world.persons["residence_type"] == "流动人口"
    assert (local == ~migrant).all()
    assert 0.7 < (~migrant).mean() < 0.9


def test_phones_only_from_16_up(world: World) -> None:
    persons = world.persons
    young = ages(persons) < 16
    assert (persons.loc[young, "phone"] == "").all()
    assert persons.loc[~young, "phone"].str.fullmatch(r"1[35789]\d{9}").all()


def test_households_are_structured_and_flats_unique(world: World) -> None:
    households, persons = world.households, world.persons
    assert households["household_no"].str.fullmatch(r"\d{9}").all()
    assert households["household_no"].is_unique
    assert households["address"].is_unique
    assert not households.duplicated(["compound", "building", "unit", "room"]).any()
    assert households["unit"].between(1, 4).all()
    assert households["size"].between(1, 5).all()

    members = persons.groupby("household_no", sort=False)
    assert members.size().reindex(households["household_no"]).tolist() == households["size"].tolist()
    assert (members["relation"].first() == "户主").all()
    assert (persons["relation"] == "户主").sum() == len(households)
    joined = persons.merge(households, on="household_no", suffixes=("", "_hh"), validate="many_to_one")
    for column in ("address", "community", "grid"):
        assert joined[column].equals(joined[f"{column}_hh"])


def test_ages_are_plausible_for_the_relation(world: World) -> None:
    persons = world.persons.assign(age=ages(world.persons))
    head_age = persons.groupby("household_no")["age"].transform("first")
    by = persons["relation"]
    assert persons.loc[by == "户主", "age"].between(22, 90).all()
    assert (persons.loc[by == "配偶", "age"] - head_age[by == "配偶"]).abs().le(5).all()
    gap = head_age[by == "子女"] - persons.loc[by == "子女", "age"]
    assert gap.between(20, 40).all()
    assert (persons["age"] >= 0).all()
    assert (persons["age"] <= 100).all()


def test_lone_elderly_tag_is_exactly_the_over_60s_living_alone(world: World) -> None:
    persons = world.persons
    size = persons["household_no"].map(world.households.set_index("household_no")["size"])
    expected = (size == 1) & (ages(persons) >= 60)
    tagged = persons["tags"].str.split(",").map(lambda tags: "独居老人" in tags)
    assert expected.any()
    assert tagged.equals(expected)
    order = ["独居老人", "低保", "残疾"]
    assert persons["tags"].map(lambda t: t == ",".join(x for x in order if x in t.split(","))).all()


def test_dibao_is_household_wide(world: World) -> None:
    dibao = world.persons["tags"].str.contains("低保", regex=False)
    per_household = dibao.groupby(world.persons["household_no"]).nunique()
    assert (per_household == 1).all()
    assert 0.005 < dibao.mean() < 0.08


def test_names_are_realistic(world: World) -> None:
    names = world.persons["name"]
    assert names.str.len().between(2, 4).all()
    assert (names.str.len() == 2).mean() > 0.3
    assert names.str[:2].isin(["欧阳", "司马", "诸葛", "上官"]).any()


# --- elderly care and market subjects ----------------------------------------------------------


def test_elderly_rows_join_to_persons_aged_60_and_over(world: World) -> None:
    elderly = world.elderly
    assert elderly["archive_no"].str.fullmatch(r"YL\d{8}").all()
    assert elderly["archive_no"].is_unique
    persons = world.persons.assign(age=ages(world.persons))
    joined = elderly.merge(persons, on="id_number", suffixes=("", "_p"), validate="one_to_one")
    assert len(joined) == len(elderly)
    for column in ("name", "phone", "community"):
        assert joined[column].equals(joined[f"{column}_p"])
    assert (joined["age"] >= 60).all()
    assert (joined.loc[joined["service_type"] == "高龄津贴", "age"] >= 80).all()
    assert set(joined["service_type"]) == {"高龄津贴", "养老服务补贴", "居家养老上门服务"}
    born = joined["birth_date"].map(date.fromisoformat)
    started = joined["start_date"].map(date.fromisoformat)
    age_at_start = pd.Series([age_on(b, s) for b, s in zip(born, started, strict=True)], index=joined.index)
    assert (age_at_start >= 60).all()
    assert (age_at_start[joined["service_type"] == "高龄津贴"] >= 80).all()
    assert (started <= REFERENCE_DATE).all()
    covered = len(elderly) / (persons["age"] >= 60).sum()
    assert 0.6 < covered < 0.8
    lone_uncovered = persons["tags"].str.contains("独居老人") & ~persons["id_number"].isin(
        elderly["id_number"]
    )
    assert lone_uncovered.any()


def test_entities_have_valid_codes_and_adult_operators(world: World) -> None:
    entities = world.entities
    invalid = [u for u in entities["uscc"] if not uscc_is_valid(u)]
    assert invalid == []
    assert entities["uscc"].is_unique
    prefix = entities["uscc"].str[:2]
    assert (prefix[entities["kind"] == "个体工商户"] == "92").all()
    assert (prefix[entities["kind"] == "企业"] == "91").all()

    persons = world.persons.assign(age=ages(world.persons))
    joined = entities.merge(
        persons,
        left_on="operator_id_number",
        right_on="id_number",
        suffixes=("", "_p"),
        validate="many_to_one",
    )
    assert len(joined) == len(entities)
    assert joined["operator"].equals(joined["name_p"])
    assert joined["community"].equals(joined["community_p"])
    assert (joined["age"] >= 18).all()
    assert set(entities["community"]) == {c.code for c in world.communities}
    assert abs(len(entities) - PERSONS / 20) <= COMMUNITIES


def test_uscc_oracle_matches_the_standards_example() -> None:
    assert uscc_is_valid("91350100M000100Y43")
    assert not uscc_is_valid("91350100M000100Y44")


def test_small_worlds_still_cover_every_community() -> None:
    small = generate_world(seed=1, persons=20, communities=4)
    assert len(small.persons) == 20
    assert (
        set(small.persons["community"])
        == set(small.entities["community"])
        == {
            "donghu",
            "xiyuan",
            "nanshan",
            "beichen",
        }
    )
    with pytest.raises(ValueError):
        generate_world(persons=19, communities=4)


# --- determinism --------------------------------------------------------------------------------

FRAMES = ("households", "persons", "elderly", "entities")


def test_same_seed_gives_identical_frames(world: World) -> None:
    again = generate_world(seed=11, persons=PERSONS, communities=COMMUNITIES)
    assert again.communities == world.communities
    for frame in FRAMES:
        pd.testing.assert_frame_equal(getattr(again, frame), getattr(world, frame))


def test_different_seed_gives_different_frames(world: World) -> None:
    other = generate_world(seed=12, persons=PERSONS, communities=COMMUNITIES)
    for frame in FRAMES:
        with pytest.raises(AssertionError):
            pd.testing.assert_frame_equal(getattr(other, frame), getattr(world, frame))
    assert not set(other.persons["id_number"]) >= set(world.persons["id_number"])
