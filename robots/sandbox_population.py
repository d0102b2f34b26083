"""Demo robot of the sandbox's 人口管理系统: persons, read from list pages (households are
declared in ``sandbox_households.toml``).

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
    relation: str = Field(role="relation", title="与户主关系")
    household_no: str = Field(role="household", title="户号")
    address: str = Field(role="address", title="住址")
    residence_type: str = Field(title="人口类型")
    tags: str | None = Field(None, role="tags", title="标签")
    community: str = Field(role="community", title="社区")


@robot(system=population, record=Person, dataset="persons", title="人口信息")
def persons(walk: Walk):
    """账号所在社区的全部人员信息，每页 100 人。"""
    return walk.pages("/persons?size=100&page={n}", last=PAGER).table("table.persons", Person)
