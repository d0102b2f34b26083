"""The deterministic synthetic world behind the sandbox government systems.

One seed gives the same communities, households, persons, elderly-care records and market subjects on
any machine and any day. Generation is vectorised with numpy so that a million persons take seconds:
strings are assembled as UCS-4 code-point matrices (numpy's own ``<U`` layout) or by indexing small
arrays of ready-made strings, never with a Python loop per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

# The sandbox's "today": ages and tags are computed against it, so one seed gives the same data on any day.
REFERENCE_DATE = date(2026, 1, 1)

_REF = np.datetime64(REFERENCE_DATE, "D")

_NAMED_COMMUNITIES = (
    ("donghu", "东湖社区"),
    ("xiyuan", "西苑社区"),
    ("nanshan", "南山社区"),
    ("beichen", "北辰社区"),
)
# fmt: off
_MORE_COMMUNITY_STEMS = (
    "桂园", "清河", "枫桥", "柳岸", "桃源", "凤鸣", "竹溪", "梅林", "石桥", "松涛", "杏花", "芦庄",
)

# Compound names are prefix + suffix; no prefix is a community stem, because each community's first
# compound is named after it ("东湖花园") and every (compound, building, unit, room) must be unique.
_COMPOUND_PREFIXES = (
    "锦绣", "阳光", "金桂", "碧水", "丽景", "枫林", "紫荆", "香樟", "玉兰", "银杏",
    "嘉禾", "春晓", "华庭", "明珠", "望江", "滨湖", "新城", "盛世", "书香", "康乐",
    "绿城", "龙湖", "金色", "海棠", "蓝湾", "文澜", "朝晖", "翠竹",
)
_COMPOUND_SUFFIXES = ("苑", "花园", "小区", "家园", "公寓", "雅苑", "名邸", "府", "新村", "华府")
_OCCUPANCY = 0.85  # share of flats with a registered household; the rest are empty or unregistered
_HOUSEHOLDS_PER_GRID = 300  # the usual size of an urban 网格
# Building, unit and room numbers are small: indexing ready-made numerals beats int-to-str conversion.
_NUMERALS = np.array([str(i) for i in range(2000)])

# Six Hangzhou districts for 户籍 residents (and the communities' own division code); other provinces'
# counties for 流动人口.
_LOCAL_REGIONS = np.array([330102, 330105, 330106, 330108, 330109, 330110])
_OTHER_REGIONS = np.array([340102, 341221, 360102, 411523, 421002, 430102, 510104, 522401])

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚"
    "卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
)
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官")
_MALE_GIVEN = (
    "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林峰建国文志海东成亮博晨轩然航睿泽天一嘉阳"
)
_FEMALE_GIVEN = "芳娜敏静丽艳娟霞秀英玲桂兰燕萍红梅琳婷雪慧颖倩洁欣怡佳雨萱涵琪梓诗悦晓思月彤瑶璐蕾薇菲丹"

_RELATIONS = np.array(["户主", "配偶", "子女", "父母", "其他"], dtype=object)
_HEAD, _SPOUSE, _CHILD, _PARENT, _OTHER = range(5)
_GENDERS = np.array(["男", "女"], dtype=object)
_RESIDENCE = np.array(["户籍", "流动人口"], dtype=object)
_TAG_NAMES = ("独居老人", "低保", "残疾")
# Index = bit mask (独居老人 4, 低保 2, 残疾 1), so the joined tags keep the documented order.
_TAG_TEXT = np.array(
    [",".join(t for bit, t in zip((4, 2, 1), _TAG_NAMES, strict=True) if code & bit) for code in range(8)],
    dtype=object,
)

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.uint32)
_ID_CHECK = np.array([ord(c) for c in "10X98765432"], dtype="<u4")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_CODEPOINTS = np.array([ord(c) for c in _USCC_CHARS], dtype="<u4")
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)

_SERVICES = np.array(["高龄津贴", "养老服务补贴", "居家养老上门服务"], dtype=object)
_ELDERLY_STATUS = np.array(["在享", "暂停", "终止"], dtype=object)
_ENTITY_KINDS = np.array(["企业", "个体工商户"], dtype=object)
_ENTITY_STATUS = np.array(["存续", "注销", "吊销"], dtype=object)
_SHOP_TRADES = np.array([
    "便利店", "小吃店", "理发店", "水果店", "五金店", "干洗店",
    "面馆", "早餐店", "烟酒店", "花店", "快递驿站", "修车铺",
])
_FIRM_BRANDS = np.array([
    "锦程", "恒信", "华宇", "博远", "启明", "瑞丰", "鼎盛",
    "和信", "宏达", "联创", "智远", "东升", "益民", "汇通",
])
_FIRM_TRADES = np.array([
    "科技", "贸易", "餐饮管理", "物业服务", "建筑装饰",
    "文化传媒", "电子商务", "信息技术", "家政服务",
])
# fmt: on


@dataclass(frozen=True)
class Community:
    code: str  # ascii, e.g. "donghu"
    name: str  # e.g. "东湖社区"
    grids: tuple[str, ...]  # e.g. ("第1网格", "第2网格", "第3网格")


# eq=False: DataFrames have no single truth value, so compare worlds frame by frame.
@dataclass(frozen=True, eq=False)
class World:
    seed: int
    communities: tuple[Community, ...]
    households: pd.DataFrame
    persons: pd.DataFrame
    elderly: pd.DataFrame  # civil-affairs elderly care records
    entities: pd.DataFrame  # market-supervision subjects


def _community_names(count: int) -> list[tuple[str, str]]:
    names = list(_NAMED_COMMUNITIES[:count])
    for n in range(len(names) + 1, count + 1):
        extra = n - len(_NAMED_COMMUNITIES) - 1
        stem = _MORE_COMMUNITY_STEMS[extra] if extra < len(_MORE_COMMUNITY_STEMS) else f"第{n}"
        names.append((f"c{n}", f"{stem}社区"))
    return names


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of ints below 2**32, one column per digit, most significant first."""
    # 32-bit division is over twice as fast as 64-bit, and every number we format fits.
    powers = 10 ** np.arange(width - 1, -1, -1, dtype="<u4")
    return np.asarray(values).astype("<u4")[:, None] // powers % np.uint32(10)


def _text(n: int, *parts: str | tuple[np.ndarray, int]) -> np.ndarray:
    """Fixed-width strings of literal text and zero-padded numbers, e.g. ``_text(n, "YL", (seq, 8))``."""
    pieces = [
        np.broadcast_to(np.array([ord(c) for c in part], dtype="<u4"), (n, len(part)))
        if isinstance(part, str)
        else _digits(*part) + ord("0")
        for part in parts
    ]
    return _codepoints_to_str(np.concatenate(pieces, axis=1))


def _codepoints_to_str(matrix: np.ndarray) -> np.ndarray:
    matrix = np.ascontiguousarray(matrix, dtype="<u4")
    return matrix.view(f"<U{matrix.shape[1]}").ravel()


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    months = days.astype("M8[M]")
    year = days.astype("M8[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("M8[D]")).astype(np.int64) + 1
    return year, month, day


def _date_text(days: np.ndarray) -> np.ndarray:
    year, month, day = _ymd(days)
    return _text(len(days), (year, 4), "-", (month, 2), "-", (day, 2))


def _plus_years(days: np.ndarray, years: np.ndarray | int) -> np.ndarray:
    """The same day of the month ``years`` later (29 February runs on to 1 March in a common year)."""
    months = days.astype("M8[M]")
    return (months + 12 * np.asarray(years)).astype("M8[D]") + (days - months.astype("M8[D]"))


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    return pool[rng.integers(0, len(pool), n)]


def _uscc(rng: np.random.Generator, type_digit: np.ndarray, division: np.ndarray) -> np.ndarray:
    """GB 32100-2015 codes: '9' (registered by market supervision), type, division, 9-char body, check."""
    n = len(type_digit)
    # Distinct body numbers make every code unique: robots key market subjects on it.
    body = rng.choice(31**9, size=n, replace=False)
    powers = 31 ** np.arange(8, -1, -1, dtype=np.int64)
    values = np.concatenate(
        [np.full((n, 1), 9), type_digit[:, None], _digits(division, 6), body[:, None] // powers % 31], axis=1
    ).astype(np.int64)
    check = (31 - (values @ _USCC_WEIGHTS) % 31) % 31
    return _codepoints_to_str(_USCC_CODEPOINTS[np.concatenate([values, check[:, None]], axis=1)])


def generate_world(seed: int = 7, persons: int = 5000, communities: int = 4) -> World:
    """The sandbox's world: ``persons`` residents spread evenly over ``communities`` communities."""
    if not 1 <= communities <= 99:
        raise ValueError("communities must be between 1 and 99 (household numbers give them 2 digits)")
    if persons < 5 * communities:
        # A household holds up to 5 persons: fewer than 5 per community could leave one empty.
        raise ValueError("persons must be at least 5 per community")
    rng = np.random.default_rng(seed)
    n = persons

    # Households: iid sizes cut at exactly n persons; contiguous blocks of them form the communities.
    sizes = rng.choice(np.arange(1, 6), size=n, p=[0.26, 0.30, 0.22, 0.14, 0.08])
    ends = np.cumsum(sizes)
    n_hh = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:n_hh]
    sizes[-1] -= ends[n_hh - 1] - n
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    hh_comm = starts * communities // n
    hh_per_comm = np.bincount(hh_comm, minlength=communities)

    flats = _flats(rng, communities, hh_per_comm)
    comm_names = _community_names(communities)
    n_grids = np.maximum(3, -(-hh_per_comm // _HOUSEHOLDS_PER_GRID))
    community_objs = tuple(
        Community(code, name, tuple(f"第{g}网格" for g in range(1, int(k) + 1)))
        for (code, name), k in zip(comm_names, n_grids, strict=True)
    )
    # Households of a community take its occupied flats in address order, so grids are contiguous.
    seq_in_comm = np.arange(n_hh) - np.repeat(np.cumsum(hh_per_comm) - hh_per_comm, hh_per_comm)
    hh_grid = seq_in_comm * n_grids[hh_comm] // hh_per_comm[hh_comm]
    hh_no = _text(n_hh, (hh_comm + 1, 2), (seq_in_comm + 1, 7)).astype(object)
    hh_address = flats["address"].astype(object)
    grid_labels = np.array([f"第{g}网格" for g in range(1, int(n_grids.max()) + 1)], dtype=object)
    comm_codes = np.array([c for c, _ in comm_names], dtype=object)
    households = pd.DataFrame(
        {
            "household_no": hh_no,
            "community": comm_codes[hh_comm],
            "community_name": np.array([nm for _, nm in comm_names], dtype=object)[hh_comm],
            "grid": grid_labels[hh_grid],
            "compound": flats["compound"],
            "building": flats["building"],
            "unit": flats["unit"],
            "room": flats["room"],
            "address": hh_address,
            "size": sizes.astype(np.int64),
        }
    )

    people = _persons(rng, sizes, starts)
    hh = people.pop("household")
    people_df = pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1, dtype=np.int64),
            "name": people["name"],
            "id_number": people["id_number"],
            "gender": _GENDERS[people["female"].astype(np.int64)],
            "birth_date": people["birth_date"],
            "phone": people["phone"],
            "relation": _RELATIONS[people["relation"]],
            "residence_type": _RESIDENCE[people["migrant"].astype(np.int64)],
            "tags": _TAG_TEXT[people["tag_code"]],
            "household_no": hh_no[hh],
            "community": comm_codes[hh_comm[hh]],
            "grid": grid_labels[hh_grid[hh]],
            "address": hh_address[hh],
        }
    )
    elderly = _elderly(rng, people_df, people)
    entities = _entities(rng, people_df, people, hh_comm[hh], flats["compound"][hh], communities)
    return World(seed, community_objs, households, people_df, elderly, entities)


def _flats(rng: np.random.Generator, communities: int, hh_per_comm: np.ndarray) -> dict[str, np.ndarray]:
    """One distinct flat per household, in address order within each community."""
    pool = np.array([p + s for p in _COMPOUND_PREFIXES for s in _COMPOUND_SUFFIXES], dtype=object)
    pool = pool[rng.permutation(len(pool))]
    parts: list[dict[str, np.ndarray]] = []
    pooled = 0  # compounds named from the pool so far, across communities
    for ci, (_, community_name) in enumerate(_community_names(communities)):
        need = math.ceil(hh_per_comm[ci] / _OCCUPANCY)
        # Compound shapes: buildings, units per building (1-4), floors, doors per floor and unit.
        shapes = np.empty((0, 4), dtype=np.int64)
        while len(shapes) < 3 or shapes.prod(axis=1).sum() < need:
            batch = max(3, math.ceil(need / 500))
            drawn = np.column_stack(
                [
                    rng.integers(4, 19, batch),
                    rng.integers(1, 5, batch),
                    rng.integers(5, 19, batch),
                    rng.integers(2, 5, batch),
                ]
            )
            shapes = np.concatenate([shapes, drawn])
        capacity = shapes.prod(axis=1)
        keep = max(3, int(np.searchsorted(np.cumsum(capacity), need)) + 1)
        shapes, capacity = shapes[:keep], capacity[:keep]
        names = [community_name.removesuffix("社区") + "花园"]
        for i in range(pooled, pooled + keep - 1):
            lap = i // len(pool)
            names.append(pool[i % len(pool)] + (f"{lap + 1}期" if lap else ""))
        pooled += keep - 1

        offsets = np.cumsum(capacity) - capacity
        flat = np.sort(rng.choice(int(capacity.sum()), size=int(hh_per_comm[ci]), replace=False))
        comp = np.searchsorted(offsets, flat, side="right") - 1
        local = flat - offsets[comp]
        _, units, floors, doors = shapes[comp].T
        per_building = units * floors * doors
        in_building = local % per_building
        parts.append(
            {
                "compound": np.array(names, dtype=object)[comp],
                "building": local // per_building + 1,
                "unit": in_building // (floors * doors) + 1,
                "floor": in_building % (floors * doors) // doors + 1,
                "door": in_building % doors + 1,
            }
        )
    flats = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    room = _NUMERALS[flats.pop("floor") * 100 + flats.pop("door")]
    flats["room"] = room.astype(object)
    flats["address"] = np.strings.add(
        np.strings.add(flats["compound"].astype(str), _NUMERALS[flats["building"]]),
        np.strings.add(np.strings.add("栋", _NUMERALS[flats["unit"]]), np.strings.add("单元", room + "室")),
    )
    return flats


def _persons(rng: np.random.Generator, sizes: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-person arrays: names, ages and ID numbers consistent within each household."""
    n_hh = len(sizes)
    n = int(sizes.sum())
    hh = np.repeat(np.arange(n_hh), sizes)
    pos = np.arange(n) - starts[hh]
    size = sizes[hh]

    # Household-level draws. Living alone skews old: that is where 独居老人 come from.
    head_age = 22 + np.floor(
        69 * np.where(sizes == 1, rng.beta(2.2, 1.5, n_hh), rng.beta(1.8, 2.2, n_hh))
    ).astype(np.int64)
    has_spouse = (sizes >= 2) & (rng.random(n_hh) < 0.8)
    # The head's parent takes the last place, never the spouse's: a 2-person household has one or the other.
    has_parent = (head_age < 60) & ((sizes >= 3) | ((sizes == 2) & ~has_spouse)) & (rng.random(n_hh) < 0.15)
    head_female = rng.random(n_hh) < 0.4
    migrant = rng.random(n_hh) < 0.2
    dibao = rng.random(n_hh) < 0.03
    region = np.where(
        migrant, _pick(rng, _OTHER_REGIONS, n_hh), _pick(rng, _LOCAL_REGIONS, n_hh)
    )  # one birthplace per family keeps hometowns plausible

    relation = np.full(n, _CHILD)
    relation[rng.random(n) < 0.04] = _OTHER  # lodgers and other relatives, aged like children
    relation[(pos == size - 1) & has_parent[hh]] = _PARENT
    relation[(pos == 1) & has_spouse[hh]] = _SPOUSE
    relation[pos == 0] = _HEAD

    h_age = head_age[hh]
    gap = 20 + np.floor(rng.random(n) * (np.minimum(40, h_age) - 19)).astype(np.int64)
    age = np.select(
        [relation == _HEAD, relation == _SPOUSE, relation == _PARENT],
        [
            h_age,
            np.clip(h_age + rng.integers(-5, 6, n), 20, 100),
            np.minimum(h_age + rng.integers(20, 36, n), 100),
        ],
        h_age - gap,
    )
    female = np.select(
        [relation == _HEAD, relation == _SPOUSE], [head_female[hh], ~head_female[hh]], rng.random(n) < 0.5
    )
    # Born within the year before the age-th anniversary of REFERENCE_DATE, so the age on it is exact.
    birth = _plus_years(np.full(n, _REF), -age) - rng.integers(0, 365, n).astype("m8[D]")

    name, surname = _names(rng, hh, relation, female, has_spouse, head_female)
    id_number = _id_numbers(rng, region[hh], birth, female)

    phone = _text(n, "1", (_pick(rng, np.array([3, 5, 7, 8, 9]), n), 1), (rng.integers(0, 10**9, n), 9))
    phone = np.where(age < 16, "", phone).astype(object)
    tag_code = ((size == 1) & (age >= 60)) * 4 + dibao[hh] * 2 + (rng.random(n) < 0.02)
    return {
        "household": hh,
        "name": name,
        "id_number": id_number,
        "female": female,
        "age": age,
        "birth": birth,
        "birth_date": _date_text(birth).astype(object),
        "phone": phone,
        "relation": relation,
        "migrant": migrant[hh],
        "tag_code": tag_code,
        "surname": surname,
    }


_SURNAME_POOL = np.array([*_SURNAMES, *_COMPOUND_SURNAMES])
# Roughly Zipf-like over the frequency-ordered list; compound surnames are rare (about 0.3% together).
_SURNAME_P = np.concatenate([1 / (np.arange(len(_SURNAMES)) + 8), np.full(len(_COMPOUND_SURNAMES), 0.002)])
_SURNAME_P /= _SURNAME_P.sum()
_MALE_POOL = np.array(list(_MALE_GIVEN))
_FEMALE_POOL = np.array(list(_FEMALE_GIVEN))


def _names(
    rng: np.random.Generator,
    hh: np.ndarray,
    relation: np.ndarray,
    female: np.ndarray,
    has_spouse: np.ndarray,
    head_female: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Full names and surnames; children carry the father's surname, the head's father the head's."""
    n, n_hh = len(hh), len(has_spouse)
    head_s = rng.choice(len(_SURNAME_POOL), size=n_hh, p=_SURNAME_P)
    spouse_s = rng.choice(len(_SURNAME_POOL), size=n_hh, p=_SURNAME_P)
    own_s = rng.choice(len(_SURNAME_POOL), size=n, p=_SURNAME_P)
    father_s = np.where(head_female & has_spouse, spouse_s, head_s)
    surname = _SURNAME_POOL[
        np.select(
            [relation == _HEAD, relation == _SPOUSE, relation == _CHILD, (relation == _PARENT) & ~female],
            [head_s[hh], spouse_s[hh], father_s[hh], head_s[hh]],
            own_s,
        )
    ]
    first = np.where(female, _pick(rng, _FEMALE_POOL, n), _pick(rng, _MALE_POOL, n))
    second = np.where(female, _pick(rng, _FEMALE_POOL, n), _pick(rng, _MALE_POOL, n))
    # 45% one-character given names: plenty of two-character names such as 王伟 for searches.
    second = np.where(rng.random(n) < 0.45, "", second)
    return np.strings.add(np.strings.add(surname, first), second).astype(object), surname


def _id_numbers(
    rng: np.random.Generator, region: np.ndarray, birth: np.ndarray, female: np.ndarray
) -> np.ndarray:
    """GB 11643 numbers, unique because sequence codes are ranks within (region, birth date, gender)."""
    n = len(birth)
    key = (region * 2 + female) * 100_000 + (birth.astype(np.int64) + 50_000)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]])
    group_start = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    group_size = np.diff(np.append(group_start, n))
    if group_size.max() > 499:
        raise ValueError("over 499 persons share a region, birth date and gender: too many for one world")
    # A random offset per group keeps codes from all starting at 001/002 without risking a clash.
    base = np.floor(rng.random(len(group_start)) * (500 - group_size)).astype(np.int64)
    index = np.empty(n, dtype=np.int64)
    index[order] = base[group] + np.arange(n) - group_start[group]
    seq = 2 * index + np.where(female, 2, 1)  # odd for men, even for women
    year, month, day = _ymd(birth)
    body = np.concatenate(
        [_digits(region, 6), _digits(year, 4), _digits(month, 2), _digits(day, 2), _digits(seq, 3)], axis=1
    )
    check = _ID_CHECK[(body @ _ID_WEIGHTS) % 11]
    return _codepoints_to_str(np.concatenate([body + ord("0"), check[:, None]], axis=1)).astype(object)


def _elderly(rng: np.random.Generator, persons: pd.DataFrame, people: dict[str, np.ndarray]) -> pd.DataFrame:
    """Care records for about 70% of the over-60s: some elderly, 独居老人 too, are unknown to the system."""
    age = people["age"]
    idx = np.flatnonzero((age >= 60) & (rng.random(len(age)) < 0.7))
    k = len(idx)
    age = age[idx]
    service = np.where((age >= 80) & (rng.random(k) < 0.6), 0, np.where(rng.random(k) < 0.6, 1, 2))
    subsidy = np.select(
        [service == 0, service == 1],
        [np.select([age >= 100, age >= 90], [500, 200], 100), _pick(rng, np.array([200, 300, 500]), k)],
        _pick(rng, np.array([100, 200, 300]), k),
    )
    # No record predates the programmes (2012) or the birthday that qualifies for the service.
    eligible = _plus_years(people["birth"][idx], np.where(service == 0, 80, 60))
    lower = np.maximum(eligible, np.datetime64("2012-01-01"))
    start = lower + np.floor(rng.random(k) * (_REF - lower).astype(np.int64)).astype("m8[D]")
    same = persons.iloc[idx]
    return pd.DataFrame(
        {
            "archive_no": _text(k, "YL", (rng.choice(10**8, size=k, replace=False), 8)).astype(object),
            "name": same["name"].to_numpy(),
            "id_number": same["id_number"].to_numpy(),
            "service_type": _SERVICES[service],
            "subsidy": subsidy.astype(np.int64),
            "start_date": _date_text(start).astype(object),
            "status": _ELDERLY_STATUS[rng.choice(3, size=k, p=[0.9, 0.06, 0.04])],
            "phone": same["phone"].to_numpy(),
            "community": same["community"].to_numpy(),
        }
    )


def _entities(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    people: dict[str, np.ndarray],
    person_comm: np.ndarray,
    person_compound: np.ndarray,
    communities: int,
) -> pd.DataFrame:
    """About one market subject per 20 residents and at least one per community, run by an adult of it."""
    count = np.maximum(1, np.round(np.bincount(person_comm, minlength=communities) / 20).astype(np.int64))
    ent_comm = np.repeat(np.arange(communities), count)
    m = len(ent_comm)
    # Persons are ordered by community, so each community's adults are one slice of `adults`.
    adults = np.flatnonzero(people["age"] >= 18)
    lo = np.searchsorted(person_comm[adults], np.arange(communities))
    hi = np.searchsorted(person_comm[adults], np.arange(communities), side="right")
    op = adults[lo[ent_comm] + np.floor(rng.random(m) * (hi - lo)[ent_comm]).astype(np.int64)]

    shop = rng.random(m) < 0.7
    compound = person_compound[op].astype(str)
    shop_name = np.strings.add(
        np.strings.add(compound, people["surname"][op]), np.strings.add("记", _pick(rng, _SHOP_TRADES, m))
    )
    firm_name = np.strings.add(
        np.strings.add("杭州", _pick(rng, _FIRM_BRANDS, m)),
        np.strings.add(_pick(rng, _FIRM_TRADES, m), "有限公司"),
    )
    address = np.strings.add(
        np.strings.add(compound, "临街商铺"), np.strings.add(_NUMERALS[rng.integers(1, 41, m)], "号")
    )
    lower = np.maximum(_plus_years(people["birth"][op], 18), np.datetime64("2000-01-01"))
    founded = lower + np.floor(rng.random(m) * (_REF - lower).astype(np.int64)).astype("m8[D]")
    operator = persons.iloc[op]
    return pd.DataFrame(
        {
            "uscc": _uscc(rng, np.where(shop, 2, 1), _LOCAL_REGIONS[ent_comm % len(_LOCAL_REGIONS)]).astype(
                object
            ),
            "name": np.where(shop, shop_name, firm_name).astype(object),
            "kind": _ENTITY_KINDS[shop.astype(np.int64)],
            "operator": operator["name"].to_numpy(),
            "operator_id_number": operator["id_number"].to_numpy(),
            "address": address.astype(object),
            "community": operator["community"].to_numpy(),
            "founded": _date_text(founded).astype(object),
            "status": _ENTITY_STATUS[rng.choice(3, size=m, p=[0.85, 0.12, 0.03])],
        }
    )
