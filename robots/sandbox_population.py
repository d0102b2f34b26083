"""Demo robots of the sandbox's 人口管理系统: persons and households, read from list pages.

The list pages are fetched through the logged-in session without rendering them (the
fast path); the pager's highest page number tells how many there are.
"""

from __future__ import annotations

import datetime as dt

from connectors.sandbox import population
from robots import Field, Record, Walk, robot

PAGER = ".pagination a, .pagination span"


class Person(Record):
    id_number: str = Field(key=True, role="id_number", title="身份证号")
    name: str = Field(role="name", title="姓名")
    gender: str = Field(title="性别")
    birth_date: dt.date = Field(role="birth_date", title="出生日期")
    phone: str | None = Field(None, role="phone", title="手机号")
    relation: str = Field(title="与户主关系")
    household_no: str = Field(role="household", title="户号")
    address: str = Field(role="address", title="住址")
    residence_type: str = Field(title="人口类型")
    tags: str | None = Field(None, role="tags", title="标签")
    community: str = Field(role="community", title="社区")


class Household(Record):
    household_no: str = Field(key=True, role="household", title="户号")
    head: str | None = Field(None, role="name", title="户主")
    address: str = Field(role="address", title="住址")
    compound: str = Field(title="小区")
    building: str = Field(title="楼栋")
    unit: str = Field(role="address_detail", title="单元")
    room: str = Field(role="address_detail", title="室")
    grid: str = Field(role="grid", title="网格")
    size: int = Field(title="人数")
    community: str = Field(role="community", title="社区")


PERSON_COLUMNS = {
    "身份证号": "id_number",
    "姓名": "name",
    "性别": "gender",
    "出生日期": "birth_date",
    "手机号": "phone",
    "与户主关系": "relation",
    "户号": "household_no",
    "住址": "address",
    "人口类型": "residence_type",
    "标签": "tags",
}
HOUSEHOLD_COLUMNS = {
    "户号": "household_no",
    "户主": "head",
    "住址": "address",
    "小区": "compound",
    "楼栋": "building",
    "单元": "unit",
    "室": "room",
    "网格": "grid",
    "人数": "size",
}


@robot(system=population, record=Person, dataset="persons", title="人口信息")
async def persons(walk: Walk):
    """Every resident of the account's community (人员信息), 100 to a page."""
    async for page in walk.pages("/persons?size=100&page={n}", last=PAGER):
        for row in page.table("table.persons", columns=PERSON_COLUMNS):
            yield row | {"community": walk.scope}


@robot(system=population, record=Household, dataset="households", title="户籍信息")
async def households(walk: Walk):
    """Every household (户籍信息) of the account's community, 100 to a page."""
    async for page in walk.pages("/households?size=100&page={n}", last=PAGER):
        for row in page.table("table.households", columns=HOUSEHOLD_COLUMNS):
            yield row | {"community": walk.scope}
