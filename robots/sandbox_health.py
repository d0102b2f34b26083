"""Demo robot of the sandbox's 基本公共卫生服务管理系统: 家庭医生签约 list pages, read without rendering.

The list is numbered from 0 and its pager shows only a few page numbers; the 末页 link says
where it ends.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from connectors.sandbox_health import health
from robots import Field, Record, Walk, robot


class FamilyDoctor(Record):
    sign_no: str = Field(key=True, title="签约编号")
    name: str = Field(role="name", title="姓名")
    id_number: str = Field(role="id_number", title="身份证号")
    gender: str = Field(title="性别")
    birth_date: dt.date = Field(role="birth_date", title="出生日期")
    phone: str | None = Field(None, role="phone", title="联系电话")
    doctor: str = Field(title="签约医生")
    team: str = Field(title="签约团队")
    sign_date: dt.date = Field(title="签约日期")
    fee: Decimal = Field(title="服务包费用")
    status: str = Field(title="状态")
    community: str = Field(role="community", title="社区")


COLUMNS = {
    "签约编号": "sign_no",
    "姓名": "name",
    "身份证号": "id_number",
    "性别": "gender",
    "出生日期": "birth_date",
    "联系电话": "phone",
    "签约医生": "doctor",
    "签约团队": "team",
    "签约日期": "sign_date",
    "服务包费用": "fee",
    "状态": "status",
}


@robot(system=health, record=FamilyDoctor, dataset="family_doctor", title="家庭医生签约")
async def family_doctor(walk: Walk):
    """Every family-doctor contract (家庭医生签约) of the account's community."""
    async for page in walk.pages("/admin/sign/list?pageNo={n}&pageSize=20", last=".pagination a"):
        for row in page.table("table.table-list", columns=COLUMNS):
            yield row | {"community": walk.scope}
