"""Demo robot of the sandbox's 残疾人服务管理系统: an ASP.NET WebForms list inside an iframe,
paged only by posting the form back (``javascript:__doPostBack`` links), so it is read
rendered: the walk clicks 下一页 inside the frame, page after page."""

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


COLUMNS = {
    "残疾人证号": "card_no",
    "姓名": "name",
    "身份证号": "id_number",
    "性别": "gender",
    "残疾类别": "category",
    "残疾等级": "grade",
    "发证日期": "issued",
    "监护人电话": "guardian_phone",
    "现住址": "address",
}


@robot(system=disability, record=Disabled, dataset="disability", title="残疾人信息")
async def disabled(walk: Walk):
    """Card holders (持证残疾人) of the account's community, ten to a page."""
    async for page in walk.follow(
        "/Default.aspx", next="a:has-text('下一页')", render=True, frame="#mainFrame"
    ):
        for row in page.table("#gvList", columns=COLUMNS):
            yield row | {"community": walk.scope}
