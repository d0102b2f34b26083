"""社会救助信息管理系统: a layui-table admin: an empty shell whose table layui fills from JSON
{code, msg, count, data} by page/limit, login errors in a layer.msg toast."""

from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from sandbox._gate import END_MESSAGES, LoginRequired, Wording
from sandbox._paging import paging
from sandbox._system import Dataset, SandboxSystem, SystemSpec
from sandbox._world import REFERENCE_DATE, World

LOGIN_PAGE = "/user/login"
LOGIN_POST = "/user/doLogin"
STATIC = Path(__file__).parent / "static" / "assist"
# What every layui back end we imitate answers an API call without a live session: HTTP 200.
NOT_LOGGED_IN = {"code": 1001, "msg": "登录超时，请重新登录"}

# (header, JSON field, frame column); the API speaks camelCase like the systems' Java back ends.
COLUMNS = [
    ("救助证号", "certNo", "cert_no"),
    ("姓名", "name", "name"),
    ("身份证号", "idCard", "id_number"),
    ("救助类别", "category", "category"),
    ("保障人数", "members", "members"),
    ("月保障金", "monthlyAmount", "monthly_amount"),
    ("批准日期", "approvedAt", "approved_at"),
    ("联系电话", "phone", "phone"),
    ("家庭住址", "address", "address"),
    ("状态", "status", "status"),
]
# After the vendor's upgrade: 身份证号 is 证件号 on the page and ``sfzh`` in the API, and columns moved.
COLUMNS_CHANGED = [
    ("救助证号", "certNo", "cert_no"),
    ("证件号", "sfzh", "id_number"),
    ("姓名", "name", "name"),
    ("状态", "status", "status"),
    ("救助类别", "category", "category"),
    ("月保障金", "monthlyAmount", "monthly_amount"),
    ("保障人数", "members", "members"),
    ("批准日期", "approvedAt", "approved_at"),
    ("家庭住址", "address", "address"),
    ("联系电话", "phone", "phone"),
]
# Monthly standard per covered person, in fen (2025-ish county figures); 特困 is 1.3 × 城市低保.
STANDARD_FEN = {"城市低保": 108_000, "农村低保": 92_000, "特困供养": 140_400}
STATUSES = ("正常", "正常", "正常", "正常", "正常", "正常", "正常", "正常", "暂停发放", "待年审")
FIRST_APPROVAL = dt.date(2015, 1, 1)


def _draw(id_number: str) -> int:
    # A stable per-person number (crc32 is the same on every run, unlike Python's hash()).
    return zlib.crc32(f"assist/{id_number}".encode())


def _category(tags: str, relation: str, draw: int) -> str | None:
    """Which programme supports this person, if any: the 低保 tag, plus a few the register never tagged."""
    if "低保" in tags or (relation == "户主" and draw % 50 == 0):
        return "农村低保" if (draw >> 4) % 3 == 0 else "城市低保"
    if ("独居老人" in tags or "残疾" in tags) and draw % 3 == 0:
        return "特困供养"
    return None


def assistance(world: World) -> pd.DataFrame:
    """One record per supported person, in the persons' order; clean values (the API formats them)."""
    persons = world.persons
    sizes = dict(zip(world.households["household_no"], world.households["size"], strict=True))
    span = (REFERENCE_DATE - FIRST_APPROVAL).days - 30
    records: list[dict[str, Any]] = []
    for person in persons.itertuples(index=False):
        draw = _draw(person.id_number)
        category = _category(person.tags, person.relation, draw)
        if category is None:
            continue
        members = 1 if category == "特困供养" else int(sizes[person.household_no])
        due = STANDARD_FEN[category] * members
        # 低保 pays the gap between the standard and the family's income; 特困 pays the standard.
        fen = due if category == "特困供养" else due - (draw >> 8) % (due * 6 // 10)
        approved = FIRST_APPROVAL + dt.timedelta(days=(draw >> 12) % span)
        records.append(
            {
                "cert_no": f"{'TK' if category == '特困供养' else 'DB'}{approved.year}{len(records) + 1:05d}",
                "name": person.name,
                "id_number": person.id_number,
                "category": category,
                "members": members,
                "monthly_amount": Decimal(fen).scaleb(-2),
                "approved_at": approved.isoformat(),
                "phone": person.phone if person.phone and (draw >> 20) % 7 else None,
                "address": person.address,
                "status": STATUSES[(draw >> 24) % len(STATUSES)],
                "community": person.community,
            }
        )
    return pd.DataFrame.from_records(records, columns=[*(col for _, _, col in COLUMNS), "community"])


def _columns(system: SandboxSystem) -> list[tuple[str, str, str]]:
    return system.layout(COLUMNS, COLUMNS_CHANGED)


def _shown(column: str, value: Any) -> Any:
    """A value the way this system's JSON carries it: amounts with thousands separators, dates with a time."""
    if column == "monthly_amount":
        return f"{value:,.2f}"
    if column == "approved_at":
        return f"{value} 00:00:00"
    if column == "phone" and not value:
        return "暂无"
    return value


def _to_api(system: SandboxSystem, frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = _columns(system)
    plain = frame.astype(object).where(frame.notna(), None)  # pandas keeps a missing phone as NaN
    return [
        {field: _shown(col, row[col]) for _, field, col in columns} for row in plain.to_dict(orient="records")
    ]


async def _login_fields(request: Request) -> dict[str, str]:
    """The login fields, whether the page's script posted them as JSON or as a form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            sent = await request.json()
        except ValueError:
            return {}
        return {k: str(v) for k, v in sent.items()} if isinstance(sent, dict) else {}
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    spec = system.spec
    everything = assistance(system.world)  # the detail API looks across communities, then refuses
    app.mount("/static/assist", StaticFiles(directory=STATIC), name="assist-static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if "/api/" in request.url.path:
            return JSONResponse(NOT_LOGGED_IN)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"reason": exc.reason, "next": target})
        return RedirectResponse(f"{LOGIN_PAGE}?{query}", status_code=302)

    @app.get(LOGIN_PAGE)
    async def login_page(request: Request, reason: str = "") -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        response = system.render(
            request,
            "assist_login.html",
            csrf=session.csrf,
            captcha=system.switches.captcha,
            info=END_MESSAGES.get(reason, ""),
        )
        system.set_session_cookie(response, session.token)
        return response

    @app.get("/user/vercode")
    async def vercode(request: Request, t: str = "") -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        response = Response(system.gate.new_captcha(session), media_type="image/png")
        response.headers["Cache-Control"] = "no-store"
        system.set_session_cookie(response, session.token)
        return response

    @app.post(LOGIN_POST)
    async def do_login(request: Request) -> Response:
        fields = await _login_fields(request)
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        result = system.gate.login(
            session,
            fields.get("account", "").strip(),
            fields.get("pwd", ""),
            fields.get("csrf", ""),
            fields.get("vercode", ""),
        )
        if result.session is None:
            response = JSONResponse({"code": 1, "msg": result.message}, status_code=result.status)
            system.set_session_cookie(response, session.token)
            return response
        token = result.session.token
        response = JSONResponse({"code": 0, "msg": "登录成功", "data": {"token": token}})
        system.set_session_cookie(response, token)
        return response

    @app.get("/user/logout")
    async def logout(request: Request) -> Response:
        system.gate.logout(system.user(request))
        return RedirectResponse(f"{LOGIN_PAGE}?reason=logout", status_code=302)

    @app.get("/index")
    async def index(request: Request) -> Response:
        session = system.user(request)
        return system.render(request, "assist_index.html", session=session)

    @app.get("/assist/list")
    async def shell(request: Request) -> Response:
        session = system.user(request)
        cols = [{"field": field, "title": header} for header, field, _ in _columns(system)]
        return system.render(request, "assist_list.html", session=session, cols=cols)

    @app.get("/assist/api/list")
    async def assist_list(request: Request, page: int = 1, limit: int = 20) -> dict[str, Any]:
        session = system.user(request)
        found = system.scoped("assistance", session.username or "")
        pager = paging(len(found), page, limit)
        rows = _to_api(system, found.iloc[pager.start : pager.stop])
        return {"code": 0, "msg": "", "count": pager.total, "data": rows}

    @app.get("/assist/api/detail")
    async def assist_detail(request: Request, certNo: str = "") -> dict[str, Any]:
        session = system.user(request)
        match = everything[everything["cert_no"] == certNo]
        if match.empty:
            return {"code": 404, "msg": "记录不存在"}
        if match.iloc[0]["community"] != system.scope_of(session.username or ""):
            return {"code": 403, "msg": "无权查看"}
        return {"code": 0, "msg": "", "data": _to_api(system, match)[0]}


SPEC = SystemSpec(
    code="assist",
    title="社会救助信息管理系统",
    prefix="jz",
    cookie_name="ASSIST_TOKEN",
    home="/index",
    datasets=(Dataset("assistance", "cert_no", assistance),),
    add_routes=add_routes,
    wording=Wording(
        bad_password="账号或密码不正确",
        bad_captcha="图形验证码错误",
        locked="账号已被锁定，请联系管理员解锁",
    ),
    login_page=LOGIN_PAGE,
    login_post=LOGIN_POST,
    standard_login=False,
)
