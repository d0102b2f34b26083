"""Demo robot of the sandbox's 民政养老服务系统: its page is an empty shell that scripts fill
from a JSON API, so the robot reads that API directly, through the logged-in session."""

from __future__ import annotations

import datetime as dt

from connectors.sandbox import civil
from robots import Field, Record, Walk, robot


class ElderlyCare(Record):
    archive_no: str = Field(key=True, title="档案编号")
    name: str = Field(role="name", title="姓名")
    id_number: str = Field(role="id_number", title="身份证号", aliases=("idCard",))
    service_type: str = Field(title="服务类型")
    subsidy: int = Field(title="补贴标准(元/月)")
    start_date: dt.date = Field(title="开始日期")
    status: str = Field(title="状态")
    phone: str | None = Field(None, role="phone", title="联系电话")
    community: str = Field(role="community", title="社区")


@robot(system=civil, record=ElderlyCare, dataset="elderly", title="养老服务")
async def elderly(walk: Walk):
    """账号所在社区的养老服务对象，读 /api/elderly/list 接口。"""
    async for rows in walk.api_pages("/api/elderly/list", size=100, fields=ElderlyCare):
        for row in rows:
            yield row
