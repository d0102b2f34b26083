"""Demo robot of the sandbox's 市场监管主体信息系统: the list is a "加载更多" card view, but the
system also exports it as an .xlsx report, which is one request instead of dozens."""

from __future__ import annotations

import datetime as dt

from connectors.sandbox import market
from robots import Field, Record, Walk, robot


class MarketEntity(Record):
    uscc: str = Field(key=True, title="统一社会信用代码")
    name: str = Field(title="主体名称")
    kind: str = Field(title="主体类型")
    operator: str = Field(role="name", title="经营者")
    operator_id_number: str = Field(role="id_number", title="经营者身份证号")
    address: str = Field(title="经营场所")
    founded: dt.date = Field(title="成立日期")
    status: str = Field(title="登记状态")
    community: str = Field(role="community", title="社区")


@robot(system=market, record=MarketEntity, dataset="entities", title="市场主体")
async def entities(walk: Walk):
    """账号所在社区登记的市场主体名录，读系统导出的 .xlsx 报表。"""
    for row in await walk.excel("/entities/export.xlsx", MarketEntity):
        yield row
