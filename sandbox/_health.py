"""基本公共卫生服务管理系统: a generic admin: list rows led by a <th> link cell, an out-of-range
page redirected to page 1, the total in the pager, its own error texts, captcha and a
429 lockout answer.

It is the shape of many provincial back offices and unlike the first three systems in
every detail a framework might have assumed: its own login form (``loginName``/``loginPwd``
/``verifyCode``, an ``<input type="submit">``), errors in ``p.login-tip``, pages numbered
from 0 with only a window of page numbers shown, a grouped two-row table header, and
``302`` redirects for expired sessions and for pages past the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from sandbox._captcha import health_captcha
from sandbox._gate import LoginRequired, Session, Wording
from sandbox._paging import PAGE_SIZES, Paging
from sandbox._system import Dataset, RecordRefused, SandboxSystem, SystemSpec
from sandbox._world import World

LOGIN_PAGE = "/admin/login"
LIST_PATH = "/admin/sign/list"
WINDOW = 5  # page numbers the pager shows around the current page (fewer than a walk needs)

Columns = list[tuple[str, list[tuple[str, str]]]]  # (group header, [(header, field)])
COLUMNS: Columns = [
    (
        "基本信息",
        [("姓名", "name"), ("身份证号", "id_number"), ("性别", "gender"), ("出生日期", "birth_date")],
    ),
    (
        "签约信息",
        [
            ("联系电话", "phone"),
            ("签约医生", "doctor"),
            ("签约团队", "team"),
            ("签约日期", "sign_date"),
            ("服务包费用", "fee"),
            ("状态", "status"),
        ],
    ),
]
# After the vendor's upgrade: 身份证号 is 证件号码 and both groups are reordered.
COLUMNS_CHANGED: Columns = [
    (
        "基本信息",
        [("证件号码", "id_number"), ("姓名", "name"), ("出生日期", "birth_date"), ("性别", "gender")],
    ),
    (
        "签约信息",
        [
            ("签约日期", "sign_date"),
            ("状态", "status"),
            ("签约医生", "doctor"),
            ("签约团队", "team"),
            ("服务包费用", "fee"),
            ("联系电话", "phone"),
        ],
    ),
]

WORDING = Wording(
    bad_password="登录名或登录密码不正确，您还有{left}次机会",
    bad_captcha="校验码输入有误",
    locked="该账户因多次登录失败已被冻结，请{minutes}分钟后重试",
    locked_status=429,
)
MSG_TIMEOUT = "登录超时或账号已在别处登录，请重新登录"

_SIGNED_SHARE = 0.4
_DOCTORS = np.array(
    ["张建华", "李秀英", "王志强", "刘海燕", "陈国平", "杨丽娟", "赵文斌", "黄晓梅"], dtype=object
)
_FEES = np.array(
    [Decimal(f) for f in ("120.00", "360.00", "1200.00", "2580.50")], dtype=object
)  # 基础包 … 孕产包
_FEE_ODDS = (0.5, 0.25, 0.2, 0.05)
_FIRST_SIGN, _LAST_SIGN = np.datetime64("2019-01-01"), np.datetime64("2025-12-31")


def family_doctor(world: World) -> pd.DataFrame:
    """家庭医生签约: about 40% of persons, drawn with the world's seed, in clean form (the truth).

    Dates are ISO, the fee a ``Decimal``, a missing phone ""; the pages format them their own way.
    """
    persons = world.persons
    rng = np.random.default_rng(world.seed + 41)
    signed = persons[rng.random(len(persons)) < _SIGNED_SHARE].reset_index(drop=True)
    n = len(signed)
    days = (_LAST_SIGN - _FIRST_SIGN).astype(int) + 1
    sign_date = (_FIRST_SIGN + rng.integers(0, days, n)).astype(str)
    names = {c.code: c.name for c in world.communities}
    team = signed["community"].map(names) + "第" + pd.Series(rng.integers(1, 4, n)).astype(str) + "团队"
    serial = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(7)
    return pd.DataFrame(
        {
            "sign_no": "QY" + pd.Series(sign_date).str[:4] + serial,
            "name": signed["name"],
            "id_number": signed["id_number"],
            "gender": signed["gender"],
            "birth_date": signed["birth_date"],
            "phone": signed["phone"],
            "doctor": _DOCTORS[rng.integers(0, len(_DOCTORS), n)],
            "team": team,
            "sign_date": sign_date,
            "fee": rng.choice(_FEES, n, p=_FEE_ODDS),
            "status": np.where(rng.random(n) < 0.1, "已解约", "有效"),
            "community": signed["community"],
            "sign_id": 880000 + signed["person_id"],  # the internal id the links carry
        }
    )


def _date(iso: str, form: str) -> str:
    """An ISO date in one of the system's own forms, without zero padding: ``{y}年{m}月{d}日``."""
    year, month, day = (int(part) for part in iso.split("-"))
    return form.format(y=year, m=month, d=day)


def _as_shown(record: pd.Series) -> dict[str, object]:
    """One record as the pages show it: their own date and money forms, ``-`` for a missing phone."""
    return record.to_dict() | {
        "birth_date": _date(record["birth_date"], "{y}年{m}月{d}日"),
        "sign_date": _date(record["sign_date"], "{y}/{m}/{d}"),
        "fee": f"￥{record['fee']:,.2f}",
        "phone": record["phone"] or "-",
    }


@dataclass(frozen=True)
class Pager:
    """A 0-based page of a list; labels are 1-based as people read them."""

    paging: Paging

    @property
    def number(self) -> int:
        return self.paging.page - 1

    @property
    def last(self) -> int:
        return self.paging.pages - 1

    def window(self) -> range:
        """The 0-based page numbers to draw: at most ``WINDOW``, the current one in the middle."""
        first = min(max(0, self.number - WINDOW // 2), max(0, self.last - WINDOW + 1))
        return range(first, min(self.last, first + WINDOW - 1) + 1)


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    records = family_doctor(system.world)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        timed_out = exc.reason in ("expired", "kicked")
        return RedirectResponse(LOGIN_PAGE + ("?timeout=1" if timed_out else ""), status_code=302)

    @app.exception_handler(RecordRefused)
    async def refused(request: Request, exc: RecordRefused) -> Response:
        return system.render(
            request,
            "health_error.html",
            exc.status,
            session=exc.session,
            message=exc.message,
            status=exc.status,
        )

    @app.get(LOGIN_PAGE)
    async def login_page(request: Request, timeout: int = 0) -> Response:
        session = system.gate.anonymous(request.cookies.get(system.spec.cookie_name))
        return _login_form(system, request, session, tip=MSG_TIMEOUT if timeout else "")

    @app.get("/admin/verifyCode")
    async def verify_code(request: Request) -> Response:
        session = system.gate.anonymous(request.cookies.get(system.spec.cookie_name))
        response = Response(system.gate.new_captcha(session), media_type="image/png")
        response.headers["Cache-Control"] = "no-store"
        system.set_session_cookie(response, session.token)
        return response

    @app.post("/admin/doLogin")
    async def do_login(
        request: Request,
        loginName: str = Form(""),  # camelCase: the form's own field names
        loginPwd: str = Form(""),
        verifyCode: str = Form(""),
        token: str = Form(""),
    ) -> Response:
        session = system.gate.anonymous(request.cookies.get(system.spec.cookie_name))
        result = system.gate.login(session, loginName.strip(), loginPwd, token, verifyCode)
        if result.session is None:
            return _login_form(
                system, request, session, tip=result.message, name=loginName, status=result.status
            )
        response = RedirectResponse(system.spec.home, status_code=302)
        system.set_session_cookie(response, result.session.token)
        return response

    @app.get("/admin/logout")
    async def logout(request: Request) -> Response:
        system.gate.logout(system.user(request))
        return RedirectResponse(LOGIN_PAGE, status_code=302)

    @app.get("/admin/index")
    async def index(request: Request) -> Response:
        session = system.user(request)
        total = len(system.scoped("family_doctor", session.username or ""))
        return system.render(request, "health_index.html", session=session, total=total)

    @app.get(LIST_PATH)
    async def sign_list(request: Request, pageNo: int = 0, pageSize: int = 20, name: str = "") -> Response:
        session = system.user(request)
        found = system.scoped("family_doctor", session.username or "")
        if name.strip():
            found = found[found["name"].str.contains(name.strip(), regex=False)]
        size = pageSize if pageSize in PAGE_SIZES else 20
        query = urlencode({"pageSize": size} | ({"name": name} if name else {}))
        pager = Pager(Paging(page=pageNo + 1, size=size, total=len(found)))
        if not 0 <= pageNo <= pager.last:
            # Past the end (or before the start) the system quietly starts over at page 1.
            return RedirectResponse(f"{LIST_PATH}?pageNo=0&{query}", status_code=302)
        rows = [_as_shown(r) for _, r in found.iloc[pager.paging.start : pager.paging.stop].iterrows()]
        columns = system.layout(COLUMNS, COLUMNS_CHANGED)
        width = sum(len(members) for _, members in columns) + 3  # with 签约编号, the hidden id and 操作
        return system.render(
            request,
            "health_sign_list.html",
            session=session,
            rows=rows,
            columns=columns,
            width=width,
            pager=pager,
            query=query,
            name=name,
        )

    @app.get("/admin/sign/detail")
    async def sign_detail(request: Request, id: str = "") -> Response:
        session = system.user(request)
        sign_id = int(id) if id.isdigit() else -1
        record = system.visible(session, records, "sign_id", sign_id).iloc[0]
        fields = [pair for _, group in system.layout(COLUMNS, COLUMNS_CHANGED) for pair in group]
        return system.render(
            request, "health_sign_detail.html", session=session, row=_as_shown(record), fields=fields
        )


def _login_form(
    system: SandboxSystem, request: Request, session: Session, *, tip: str, name: str = "", status: int = 200
) -> Response:
    response = system.render(
        request,
        "health_login.html",
        status,
        token=session.csrf,
        captcha=system.switches.captcha,
        tip=tip,
        name=name,
    )
    system.set_session_cookie(response, session.token)
    return response


SPEC = SystemSpec(
    code="health",
    title="基本公共卫生服务管理系统",
    prefix="wj",
    cookie_name="HEALTHSID",
    home="/admin/index",
    datasets=(Dataset("family_doctor", "sign_no", family_doctor),),
    add_routes=add_routes,
    wording=WORDING,
    captcha_style=health_captcha,
    login_page=LOGIN_PAGE,
    login_post="/admin/doLogin",
    standard_login=False,
)
