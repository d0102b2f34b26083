"""Demo robot of the sandbox's 社会救助信息管理系统: its list page is a layui table that scripts fill
from a JSON API, so the robot reads that API directly, through the logged-in session."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from connectors.sandbox_assist import assist
from robots import Field, Record, Walk, robot


class Assistance(Record):
    cert_no: str = Field(key=True, title="救助证号")
    name: str = Field(role="name", title="姓名")
    id_number: str = Field(role="id_number", title="身份证号")
    category: str = Field(title="救助类别")
    members: int = Field(title="保障人数")
    monthly_amount: Decimal = Field(title="月保障金")
    approved_at: dt.date = Field(title="批准日期")
    phone: str | None = Field(None, role="phone", title="联系电话")
    address: str = Field(role="address", title="家庭住址")
    status: str = Field(title="状态")
    community: str = Field(role="community", title="社区")


FIELDS = {
    "certNo": "cert_no",
    "name": "name",
    "idCard": "id_number",
    "category": "category",
    "members": "members",
    "monthlyAmount": "monthly_amount",
    "approvedAt": "approved_at",
    "phone": "phone",
    "address": "address",
    "status": "status",
}


@robot(system=assist, record=Assistance, dataset="assistance", title="社会救助")
async def assistance(walk: Walk):
    """低保/特困 recipients (救助对象) of the account's community, from /assist/api/list."""
    async for rows in walk.api_pages(
        "/assist/api/list",
        page_param="page",
        size_param="limit",
        size=50,
        rows="data",
        total="count",
        fields=FIELDS,
    ):
        for row in rows:
            yield row | {"community": walk.scope}
