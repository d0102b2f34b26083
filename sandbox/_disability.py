"""残疾人服务管理系统: an ASP.NET WebForms system: GBK pages, a list in an <iframe>, paged by
__doPostBack with __VIEWSTATE (no page number in any URL).

Everything about it is the older shape still common in provincial systems: the charset is
named only in a ``<meta http-equiv>`` (the HTTP header says plain ``text/html``, as old IIS
servers send it), login errors are ``alert()`` dialogs of a re-rendered page, and paging
posts the form back with a view state the server signed for this very session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from sandbox._gate import LoginRequired, Session, Wording
from sandbox._system import TEMPLATES, Dataset, RecordRefused, SandboxSystem, SystemSpec
from sandbox._world import REFERENCE_DATE, World

ENCODING = "gbk"  # the meta says gb2312, as such pages do; browsers decode that label as GBK
PAGE_SIZE = 10
PAGE_BUTTONS = 10  # ASP.NET's PageButtonCount: page numbers shown per block, "..." to the next block
MISSING = "—"
GENERATOR = "C2EE9ABB"  # __VIEWSTATEGENERATOR: a hash of the page's path, fixed per page in ASP.NET
# Old IIS names itself; uvicorn's own Server header stays, so only the ASP.NET ones are added.
ASPNET_HEADERS = {"X-Powered-By": "ASP.NET", "X-AspNet-Version": "4.0.30319"}

COLUMNS = [
    ("残疾人证号", "card_no"),
    ("姓名", "name"),
    ("身份证号", "id_number"),
    ("性别", "gender"),
    ("残疾类别", "category"),
    ("残疾等级", "grade"),
    ("发证日期", "issued"),
    ("监护人电话", "guardian_phone"),
    ("现住址", "address"),
]
# After the vendor's upgrade: 残疾人证号 is 证号 and the columns are reordered.
COLUMNS_CHANGED = [
    ("证号", "card_no"),
    ("姓名", "name"),
    ("性别", "gender"),
    ("身份证号", "id_number"),
    ("残疾等级", "grade"),
    ("残疾类别", "category"),
    ("现住址", "address"),
    ("监护人电话", "guardian_phone"),
    ("发证日期", "issued"),
]

# The card number is the ID number plus the category digit (1 视力 … 7 多重) and the grade digit.
CATEGORIES = np.array(["视力", "听力", "言语", "肢体", "智力", "精神", "多重"], dtype=object)
CATEGORY_SHARES = [0.13, 0.16, 0.02, 0.45, 0.09, 0.10, 0.05]
GRADES = np.array(["一级", "二级", "三级", "四级"], dtype=object)
UNTAGGED_SHARE = 0.08  # card holders the population system does not tag 残疾: the systems disagree
MOBILE_PREFIXES = np.array([130, 133, 135, 137, 138, 139, 150, 151, 158, 159, 177, 186, 187, 189, 199])
SECOND_GENERATION = np.datetime64("2008-07-01")  # the first issue date of today's card

# What ASP.NET's yellow error page says when a postback carries what this session was not given.
MSG_VIEWSTATE = (
    "验证视图状态 MAC 失败。如果此应用程序由网络场或群集承载，请确保 machineKey 配置指定了相同的密钥。"
)
MSG_EVENT_VALIDATION = "回发或回调参数无效。事件验证未通过：该参数并非由此页面的控件生成。"

WORDING = Wording(
    bad_password="用户名或密码错误！",
    bad_captcha="验证码错误！",
    locked="该用户已被锁定！",
    bad_csrf="页面已过期，请刷新后重试！",
)


def _records(world: World) -> pd.DataFrame:
    """One card per holder: everyone tagged 残疾, and some more; clean values (ISO dates, None if none)."""
    persons = world.persons
    n = len(persons)
    rng = np.random.default_rng(world.seed + 706)
    # Every draw is made for every person, so that who holds a card does not shift the others' values.
    extra = rng.random(n) < UNTAGGED_SHARE
    category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_SHARES)
    grade = rng.integers(0, len(GRADES), n)
    born = pd.to_datetime(persons["birth_date"]).to_numpy().astype("M8[D]")
    first = np.maximum(born, SECOND_GENERATION)
    span = (np.datetime64(REFERENCE_DATE) - first).astype(np.int64)
    issued = first + (rng.random(n) * span).astype("m8[D]")
    # Minors and holders of an intellectual or mental disability card always have a guardian.
    needs_guardian = (born > np.datetime64(REFERENCE_DATE) - np.timedelta64(18 * 365, "D")) | (category >= 4)
    has_guardian = needs_guardian | (rng.random(n) < 0.3)
    phone = (rng.choice(MOBILE_PREFIXES, n) * 10**8 + rng.integers(0, 10**8, n)).astype(str)
    frame = pd.DataFrame(
        {
            "card_no": persons["id_number"] + (category + 1).astype(str) + (grade + 1).astype(str),
            "name": persons["name"],
            "id_number": persons["id_number"],
            "gender": persons["gender"],
            "category": CATEGORIES[category],
            "grade": GRADES[grade],
            "issued": pd.Series(issued).dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "guardian_phone": np.where(has_guardian, phone.astype(object), None),
            "address": persons["address"],
            "community": persons["community"],
        }
    )
    holds = persons["tags"].str.contains("残疾", regex=False).to_numpy() | extra
    return frame[holds].reset_index(drop=True)


def _shown(column: str, value: object) -> str:
    """A clean value as the pages show it: 发证日期 as 20190615, a missing phone as —."""
    if pd.isna(value):  # pandas holds a missing string as NaN
        return MISSING
    return str(value).replace("-", "") if column == "issued" else str(value)


class Seal:
    """Opaque base64 values bound to one session, like ASP.NET's MAC-protected view state."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(20)

    def wrap(self, session: Session, text: str) -> str:
        body = text.encode()
        return base64.b64encode(b"\xff\x01" + body + self._mac(session, body)).decode()

    def unwrap(self, session: Session, value: str) -> str | None:
        """The text sealed for ``session``, or None if this session was never given ``value``."""
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        body, mac = raw[2:-20], raw[-20:]
        if raw[:2] != b"\xff\x01" or not hmac.compare_digest(mac, self._mac(session, body)):
            return None
        return body.decode()

    def _mac(self, session: Session, body: bytes) -> bytes:
        return hmac.new(self._key, session.serial.to_bytes(8, "big") + body, hashlib.sha1).digest()


def pager(page: int, pages: int) -> list[tuple[str, str | None]]:
    """The pager row's items as (text, postback argument); the current page has no argument."""
    items: list[tuple[str, str | None]] = []
    if page > 1:
        items += [("首页", "Page$First"), ("上一页", "Page$Prev")]
    first = (page - 1) // PAGE_BUTTONS * PAGE_BUTTONS + 1
    last = min(first + PAGE_BUTTONS - 1, pages)
    if first > 1:
        items.append(("...", f"Page${first - 1}"))
    items += [(str(n), None if n == page else f"Page${n}") for n in range(first, last + 1)]
    if last < pages:
        items.append(("...", f"Page${last + 1}"))
    if page < pages:
        items += [("下一页", "Page$Next"), ("末页", "Page$Last")]
    return items


def _target(argument: str, page: int, pages: int) -> int:
    """The page a pager argument (``Page$3``, ``Page$Next``, …) asks for, from ``page`` of ``pages``."""
    step = argument.removeprefix("Page$")
    named = {"First": 1, "Prev": page - 1, "Next": page + 1, "Last": pages}
    return named[step] if step in named else int(step)


def _page_count(rows: int) -> int:
    return max(1, -(-rows // PAGE_SIZE))


def add_routes(app: FastAPI, system: SandboxSystem) -> None:
    spec = system.spec
    seal = Seal()
    records = _records(system.world)

    def render(template: str, status: int = 200, **context: Any) -> Response:
        html = TEMPLATES.get_template(template).render(system=system, **context)
        # No charset in the header: the browser has only the meta to go by.
        headers = {"Content-Type": "text/html", **ASPNET_HEADERS}
        return Response(html.encode(ENCODING), status_code=status, headers=headers)

    def with_cookie(response: Response, session: Session) -> Response:
        system.set_session_cookie(response, session.token)
        return response

    def login_form(session: Session, *, alert: str = "", username: str = "", status: int = 200) -> Response:
        response = render(
            "disability_login.html",
            status,
            viewstate=seal.wrap(session, "Login"),
            generator=GENERATOR,
            validation=seal.wrap(session, session.csrf),
            captcha=system.switches.captcha,
            alert=alert,
            username=username,
        )
        return with_cookie(response, session)

    def server_error(message: str) -> Response:
        return render("disability_error.html", 500, title="“/”应用程序中的服务器错误。", message=message)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        # Forms authentication: every page, the ones inside the iframe too, goes to the login page.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{spec.login_page}?{urlencode({'ReturnUrl': target})}", status_code=302)

    @app.exception_handler(RecordRefused)
    async def refused(request: Request, exc: RecordRefused) -> Response:
        return render("disability_error.html", exc.status, title="提示", message=exc.message)

    @app.get("/Login.aspx")
    async def login_page(request: Request) -> Response:
        return login_form(system.gate.anonymous(request.cookies.get(spec.cookie_name)))

    @app.get("/ValidateCode.aspx")
    async def validate_code(request: Request) -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        response = Response(system.gate.new_captcha(session), media_type="image/png")
        response.headers["Cache-Control"] = "no-cache"
        return with_cookie(response, session)

    @app.post("/Login.aspx")
    async def login(request: Request) -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        form = await request.form()
        username = str(form.get("txtUserName", "")).strip()
        # The gate checks the token; what it gets is whatever this session was issued, or "".
        csrf = seal.unwrap(session, str(form.get("__EVENTVALIDATION", ""))) or ""
        password, code = str(form.get("txtPassword", "")), str(form.get("txtCode", ""))
        result = system.gate.login(session, username, password, csrf, code)
        if result.session is None:
            return login_form(session, alert=result.message, username=username, status=result.status)
        return with_cookie(RedirectResponse(spec.home, status_code=302), result.session)

    @app.get("/Logout.aspx")
    async def logout(request: Request) -> Response:
        system.gate.logout(system.user(request))
        return RedirectResponse(spec.login_page, status_code=302)

    @app.get("/Default.aspx")
    async def default(request: Request) -> Response:
        session = system.user(request)
        account = system.gate.accounts[session.username or ""]
        return render("disability_default.html", account=account)

    def grid(session: Session, page: int) -> Response:
        found = system.scoped("disability", session.username or "")
        pages = _page_count(len(found))
        page = min(max(page, 1), pages)
        columns = system.layout(COLUMNS, COLUMNS_CHANGED)
        shown = found.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        items = pager(page, pages) if pages > 1 else []
        return render(
            "disability_list.html",
            headers=[header for header, _ in columns],
            rows=[
                (row["card_no"], [_shown(column, row[column]) for _, column in columns])
                for _, row in shown.iterrows()
            ],
            first=(page - 1) * PAGE_SIZE,
            total=len(found),
            page=page,
            pages=pages,
            pager=items,
            # Like GridView's own view state, it holds the page index and the page count.
            viewstate=seal.wrap(session, f"gvList:{page}/{pages}"),
            generator=GENERATOR,
            validation=seal.wrap(session, "|".join(arg for _, arg in items if arg)),
        )

    @app.get("/List.aspx")
    async def list_page(request: Request) -> Response:
        return grid(system.user(request), 1)

    @app.post("/List.aspx")
    async def postback(request: Request) -> Response:
        session = system.user(request)
        form = await request.form()
        state = seal.unwrap(session, str(form.get("__VIEWSTATE", ""))) or ""
        if not state.startswith("gvList:"):
            return server_error(MSG_VIEWSTATE)
        page, pages = map(int, state.removeprefix("gvList:").split("/"))
        if form.get("__EVENTTARGET") != "gvList":
            return grid(session, page)  # any other control's postback redraws the same page
        argument = str(form.get("__EVENTARGUMENT", ""))
        allowed = (seal.unwrap(session, str(form.get("__EVENTVALIDATION", ""))) or "").split("|")
        if not argument or argument not in allowed:
            return server_error(MSG_EVENT_VALIDATION)
        return grid(session, _target(argument, page, pages))

    @app.get("/Detail.aspx")
    async def detail(request: Request, id: str = "") -> Response:
        session = system.user(request)
        row = system.visible(session, records, "card_no", id).iloc[0]
        fields = [
            (header, _shown(column, row[column]))
            for header, column in system.layout(COLUMNS, COLUMNS_CHANGED)
        ]
        return render("disability_detail.html", fields=fields)


SPEC = SystemSpec(
    code="disability",
    title="残疾人服务管理系统",
    prefix="cl",
    cookie_name="ASP.NET_SessionId",
    home="/Default.aspx",
    datasets=(Dataset("disability", "card_no", _records),),
    add_routes=add_routes,
    wording=WORDING,
    login_page="/Login.aspx",
    login_post="/Login.aspx",
    standard_login=False,
)
