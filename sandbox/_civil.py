"""民政养老服务系统: a single-page app whose table is filled by fetch() calls to a JSON API."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox._paging import paging
from sandbox._system import Dataset, SandboxSystem, SystemSpec

# (header, JSON field, frame column); the API speaks camelCase like the systems' Java back ends.
COLUMNS = [
    ("档案编号", "archiveNo", "archive_no"),
    ("姓名", "name", "name"),
    ("身份证号", "idCard", "id_number"),
    ("服务类型", "serviceType", "service_type"),
    ("补贴标准(元/月)", "subsidy", "subsidy"),
    ("开始日期", "startDate", "start_date"),
    ("状态", "status", "status"),
    ("联系电话", "phone", "phone"),
]
COLUMNS_CHANGED = [
    ("档案编号", "archiveNo", "archive_no"),
    ("证件号码", "certNo", "id_number"),
    ("姓名", "name", "name"),
    ("状态", "status", "status"),
    ("服务类型", "serviceType", "service_type"),
    ("补贴标准(元/月)", "subsidy", "subsidy"),
    ("联系电话", "phone", "phone"),
    ("开始日期", "startDate", "start_date"),
]


def _columns(system: SandboxSystem) -> list[tuple[str, str, str]]:
    return system.layout(COLUMNS, COLUMNS_CHANGED)


def _to_api(system: SandboxSystem, frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = _columns(system)
    out = frame[[col for _, _, col in columns]].rename(columns={col: field for _, field, col in columns})
    names = {c.code: c.name for c in system.world.communities}
    return out.assign(deptName=frame["community"].map(names)).to_dict(orient="records")


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    @app.get("/elderly")
    async def shell(request: Request) -> Response:
        session = system.user(request)
        headers = [(header, field) for header, field, _ in _columns(system)]
        return system.render(request, "civil_elderly.html", session=session, headers=headers)

    @app.get("/api/user/info")
    async def user_info(request: Request) -> dict[str, Any]:
        session = system.user(request)
        account = system.gate.accounts[session.username or ""]
        return {"code": 200, "user": {"userName": account.username, "deptName": account.scope_name}}

    @app.get("/api/elderly/list")
    async def elderly_list(request: Request, pageNum: int = 1, pageSize: int = 20, keyword: str = "") -> Any:
        session = system.user(request)
        found = system.scoped("elderly", session.username or "")
        keyword = keyword.strip()
        if keyword:
            found = found[
                found["name"].str.contains(keyword, regex=False)
                | found["id_number"].str.contains(keyword, regex=False)
            ]
        pager = paging(len(found), pageNum, pageSize)
        rows = _to_api(system, found.iloc[pager.start : pager.stop])
        return {"code": 200, "msg": "查询成功", "total": pager.total, "rows": rows}

    @app.get("/api/elderly/{archive_no}")
    async def elderly_detail(request: Request, archive_no: str) -> Response:
        session = system.user(request)
        match = system.visible(session, system.world.elderly, "archive_no", archive_no)
        return JSONResponse({"code": 200, "data": _to_api(system, match)[0]})


SPEC = SystemSpec(
    code="civil",
    title="民政养老服务系统",
    prefix="mz",
    cookie_name="SESSION",
    home="/elderly",
    datasets=(Dataset("elderly", "archive_no", lambda world: world.elderly),),
    add_routes=add_routes,
)
