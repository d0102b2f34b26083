"""市场监管主体信息系统: cards with a "加载更多" button (and infinite scroll), plus an .xlsx report."""

from __future__ import annotations

import io
from urllib.parse import quote

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox._system import Dataset, SandboxSystem, SystemSpec

FIELDS = [
    ("统一社会信用代码", "uscc"),
    ("主体名称", "name"),
    ("主体类型", "kind"),
    ("经营者", "operator"),
    ("经营者身份证号", "operator_id_number"),
    ("经营场所", "address"),
    ("成立日期", "founded"),
    ("登记状态", "status"),
]
FIELDS_CHANGED = [
    ("企业名称", "name"),
    ("统一社会信用代码", "uscc"),
    ("登记状态", "status"),
    ("主体类型", "kind"),
    ("经营者", "operator"),
    ("经营者身份证号", "operator_id_number"),
    ("成立日期", "founded"),
    ("经营场所", "address"),
]


def _fields(system: SandboxSystem) -> list[tuple[str, str]]:
    return system.layout(FIELDS, FIELDS_CHANGED)


def _found(system: SandboxSystem, username: str, keyword: str) -> pd.DataFrame:
    found = system.scoped("entities", username)
    keyword = keyword.strip()
    if keyword:
        found = found[found["name"].str.contains(keyword, regex=False)]
    return found


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    @app.get("/entities")
    async def entities(request: Request, keyword: str = "") -> Response:
        session = system.user(request)
        found = _found(system, session.username or "", keyword)
        batch = system.switches.cards_per_batch
        return system.render(
            request,
            "market_entities.html",
            session=session,
            rows=found.iloc[:batch],
            fields=_fields(system),
            total=len(found),
            next_offset=batch,
            has_more=len(found) > batch,
            keyword=keyword,
        )

    @app.get("/entities/more")
    async def more(request: Request, offset: int = 0, limit: int = 0, keyword: str = "") -> Response:
        session = system.user(request)
        found = _found(system, session.username or "", keyword)
        offset, limit = max(0, offset), min(max(1, limit or system.switches.cards_per_batch), 100)
        return system.render(
            request,
            "market_cards.html",
            session=session,
            rows=found.iloc[offset : offset + limit],
            fields=_fields(system),
            next_offset=offset + limit,
            has_more=len(found) > offset + limit,
        )

    @app.get("/entities/export.xlsx")
    async def export(request: Request, keyword: str = "") -> Response:
        session = system.user(request)
        fields = _fields(system)
        found = _found(system, session.username or "", keyword)
        table = found[[column for _, column in fields]].set_axis([header for header, _ in fields], axis=1)
        buffer = io.BytesIO()
        table.to_excel(buffer, index=False, sheet_name="市场主体名录")
        filename = quote("市场主体名录.xlsx")
        return Response(
            buffer.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={
                "Content-Disposition": f"attachment; filename=\"export.xlsx\"; filename*=UTF-8''{filename}"
            },
        )

    @app.get("/entities/{uscc}")
    async def entity(request: Request, uscc: str) -> Response:
        session = system.user(request)
        row = system.visible(session, system.world.entities, "uscc", uscc).iloc[0]
        return system.render(request, "market_entity.html", session=session, row=row, fields=_fields(system))


SPEC = SystemSpec(
    code="market",
    title="市场监管主体信息系统",
    prefix="sc",
    cookie_name="ASP.NET_SessionId",
    home="/entities",
    datasets=(Dataset("entities", "uscc", lambda world: world.entities),),
    add_routes=add_routes,
)
