"""Demo robot of the sandbox's 残疾人服务管理系统: an ASP.NET WebForms list inside an iframe,
paged only by posting the form back (``javascript:__doPostBack`` links). The robot reads the
frame's own page, /List.aspx, and the walk follows 下一页 by posting the form as the click
would, without rendering."""

from __future__ import annotations

import datetime as dt

from connectors.sandbox_disability import disability
from robots import Field, Record, Walk, robot


class Disabled(Record):
    card_no: str = Field(key=True, role="id_derived", title="残疾人证号")
    name: str = Field(role="name", title="姓名")
    id_number: str = Field(role="id_number", title="身份证号")
    gender: str = Field(title="性别")
    category: str = Field(title="残疾类别")
    grade: str = Field(title="残疾等级")
    issued: dt.date = Field(title="发证日期")
    guardian_phone: str | None = Field(None, role="phone", title="监护人电话")
    address: str = Field(role="address", title="现住址")
    community: str = Field(role="community", title="社区")


@robot(system=disability, record=Disabled, dataset="disability", title="残疾人信息")
def disabled(walk: Walk):
    """账号所在社区的持证残疾人，每页 10 人，翻页靠提交表单。"""
    return walk.follow("/List.aspx", next="a:has-text('下一页')").table("#gvList", Disabled)
