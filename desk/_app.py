"""The desk's web application: one FastAPI app over the snapshot, with staff logins.

Pages are rendered on the server (Jinja2, autoescaped); every response carries headers that keep
it out of caches and frames and lets no script run but our own files (there are none yet).
A request whose path, query or form holds a control character (a NUL, a line break) is refused
before any route reads it: no form of the desk takes one, and a database or a log would choke on it.
"""

from __future__ import annotations

import hmac
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from loguru import logger
from starlette.exceptions import HTTPException

from desk import _views as views
from desk._grants import Grants, Shown
from desk._links import Sealer
from desk._places import Places
from desk._staff import DeskLogin, StaffDirectory
from machine import zone_label
from robots.runtime import RobotDeclarationError, dataset_titles
from settings import Settings, load_settings
from store import Snapshot, Store, StoreUnavailable, make_engine

HERE = Path(__file__).parent
SESSION_COOKIE = "gh_session"
PRE_LOGIN_COOKIE = "gh_pre"  # the login form's CSRF token, before there is a session to hold one
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Pages hold personal data (revealed ones in full): no browser or proxy may keep a copy.
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page and comes back after."""


class Refused(Exception):
    """A request the desk turns down, with the Chinese sentence staff see and its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


CHOICES_TTL_S = 60
SCOPES = ("", "scope", None)  # the choices' keys of the communities the snapshot knows, and of freshness
FRESHNESS = ("", "freshness", None)
T = TypeVar("T")
NOT_FOUND = "未找到。记录可能不存在，或不在您的辖区。"
STALE_FORM = "页面已过期，请刷新页面后重试。"
BAD_INPUT = "输入有误，请检查后重试。"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_FORM_BYTES = 64 * 1024  # the desk's biggest form (a reason of 200 characters) is far smaller


@dataclass
class Desk:
    """What every request of the desk works with."""

    settings: Settings
    snapshot: Snapshot
    staff: StaffDirectory
    grants: Grants
    sealer: Sealer
    titles: dict[str, str]
    templates: Jinja2Templates
    places: Places
    # Filter choices (every grid, every tag) cost a scan of the dataset; they change only when a
    # harvest publishes, so a minute's staleness is fine for a drop-down.
    # The freshness line and the communities known are remembered as long, for the same reason.
    choices: dict[tuple[str, str, str | None], tuple[float, Any]] = field(default_factory=dict)

    def remembered(self, key: tuple[str, str, str | None], make: Callable[[], T]) -> T:
        """What ``make`` gives, made again after CHOICES_TTL_S."""
        known = self.choices.get(key)
        if known is None or time.monotonic() - known[0] > CHOICES_TTL_S:
            known = self.choices[key] = (time.monotonic(), make())
        return known[1]

    def distinct(self, dataset: str, name: str, scope: str | None) -> list[str]:
        return self.remembered(
            (dataset, name, scope), lambda: self.snapshot.distinct(dataset, name, scope=scope)
        )

    def views(self) -> dict[str, views.DatasetView]:
        return views.catalog(self.snapshot, self.titles, self.places)

    def scopes(self) -> list[str]:
        """The communities the snapshot holds records of."""
        return self.remembered(SCOPES, self.snapshot.scopes)

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        login: DeskLogin | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        fresh = []  # what was harvested and when is for staff, not for the login page
        if login is not None:
            catalog = context.get("catalog") or self.views()
            fresh = views.freshness(
                self.remembered(FRESHNESS, self.snapshot.freshness),
                catalog,
                self.settings.max_age_hours,
                self.settings.timezone,
            )
        shown: Shown | None = getattr(request.state, "grant", None)  # a page asked for under a grant
        scope = login.user.scope if login else None
        page = {
            # A staff user whose community nothing was harvested for sees no records: say so on every page.
            "no_records_for": scope if scope and self.scopes() and scope not in self.scopes() else None,
            "me": login.user if login else None,
            "csrf": login.csrf if login else "",
            "fresh": fresh,
            "grant": shown,
        }
        response = self.templates.TemplateResponse(request, template, page | context, status_code=status)
        if shown is None:
            return response
        return HTMLResponse(self.grants.carry(bytes(response.body).decode(), shown), status_code=status)


def desk_of(request: Request) -> Desk:
    return request.app.state.desk


def current_login(request: Request) -> DeskLogin:
    """The request's staff session (a FastAPI dependency); none sends the browser to log in."""
    token = request.cookies.get(SESSION_COOKIE)
    login = desk_of(request).staff.session(token) if token else None
    if login is None:
        raise LoginRequired
    return login


def check_csrf(expected: str, given: str) -> None:
    if not (expected and given and hmac.compare_digest(expected.encode(), given.encode())):
        raise Refused(403, STALE_FORM)


def scope_of(login: DeskLogin) -> str | None:
    """The community a user may see; None (all) for admins."""
    return None if login.user.is_admin else login.user.scope


def create_app(settings: Settings | None = None) -> FastAPI:
    """The desk for the snapshot that ``settings`` point at."""
    from desk import (  # the routes import this module for its helpers
        _change_pages,
        _login,
        _overview,
        _pages,
        _visit_pages,
    )

    settings = settings or load_settings()
    engine = make_engine(settings.resolved_database_url)
    store = Store(engine)  # creates the store's tables on a database nothing has harvested into yet
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.auto_reload = False  # they change with a release, not while it runs: no stat per page
    templates.env.globals["action_names"] = ACTION_NAMES
    templates.env.globals["zone_label"] = zone_label(settings.timezone)
    places = Places(settings.communities)
    templates.env.filters["community"] = places.community
    app = FastAPI(title="社区数据查询", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.desk = Desk(
        settings=settings,
        snapshot=Snapshot(store.engine),
        staff=StaffDirectory(
            engine,
            session_hours=settings.desk_session_hours,
            idle_minutes=settings.desk_idle_minutes,
            max_failures=settings.desk_login_failures,
            lock_minutes=settings.desk_lock_minutes,
        ),
        grants=Grants(engine),
        sealer=Sealer(settings.data_dir / "desk.key"),
        titles=_titles(),
        templates=templates,
        places=places,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(_login.router)
    app.include_router(_pages.router)
    app.include_router(_overview.router)
    app.include_router(_change_pages.router)
    _visit_pages.install(app)
    _add_handlers(app)
    return app


def serve_app() -> FastAPI:
    """The desk of one of `harvest serve --workers N`'s processes: settings and logging from the
    environment, as the command that started it had them."""
    from robots.runtime import configure_logging

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


ACTION_NAMES = {
    "reveal": "查看完整信息",
    "export": "导出",
    "search": "按号码检索",
    "purge": "清理过期数据",
    "login": "登录",
    "login_failed": "登录失败",
    "login_throttled": "登录受限",
    "logout": "退出",
    "digest": "每日变动推送",
    "visit": "排摸登记",
    "visit_sheet": "打印排摸表",
}


def _titles() -> dict[str, str]:
    try:
        return dataset_titles()
    except RobotDeclarationError as exc:  # a broken robot file must not take the desk down
        logger.warning("dataset titles unavailable, showing dataset names: {}", exc)
        return {}


def _add_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers_and_log(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        # The path only: query strings carry what staff searched for, which is personal data.
        path = request.url.path
        refusal = await _refusal(request)
        if refusal is not None:
            path = "-"  # the refused path may hold the character, or what was searched for
            response = _error_page(request, *refusal)
        else:
            try:
                with desk_of(request).snapshot.pinned():  # one look at the dataset infos per request
                    response = await call_next(request)
            except Exception as exc:
                response = _failed(request, exc)
        response.headers.update(SECURITY_HEADERS)
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("desk {} {} {} {:.0f} ms", request.method, path, response.status_code, elapsed)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _: LoginRequired) -> Response:
        back = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={back}", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _error_page(request, exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: NOT_FOUND, 405: "不支持此操作。"}.get(exc.status_code, "请求无法处理。")
        return _error_page(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, _: RequestValidationError) -> Response:
        return _error_page(request, 400, BAD_INPUT)

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> Response:
        logger.error("desk: the snapshot database is unavailable: {}", exc)
        return _error_page(request, 503, "数据库暂时无法访问，请稍后再试或联系管理员。")


async def _refusal(request: Request) -> tuple[int, str] | None:
    """Why the desk refuses the request before any route reads it, as (status, message), or None."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_FORM_BYTES:
        return 413, "提交的内容过长，请缩短后重试。"
    texts = [request.url.path, *(t for pair in request.query_params.multi_items() for t in pair)]
    if request.method == "POST":
        await request.body()  # read once: the route gets the same bytes again
        try:
            form = await request.form()
        except HTTPException:  # a malformed multipart body
            return 400, BAD_INPUT
        texts += [t for key, value in form.multi_items() for t in (key, value) if isinstance(t, str)]
        await form.close()
    if any(CONTROL_CHARACTERS.search(text) for text in texts):
        return 400, "输入中含有控制字符（如 NUL、换行），请删除后重试。"
    return None


def _failed(request: Request, exc: Exception) -> HTMLResponse:
    """A bug's one log line: where it failed and its kind, never its message (which may quote what
    was searched for, or a record); the browser gets a plain error page, not a traceback."""
    frames, root = traceback.extract_tb(exc.__traceback__), str(HERE.parent)
    ours = [f for f in frames if f.filename.startswith(root) and "site-packages" not in f.filename]
    where = (ours or frames)[-1]
    logger.error(
        "desk {} {} failed: {} at {}:{} (message withheld: it may hold personal data)",
        request.method,
        request.url.path,
        type(exc).__name__,
        Path(where.filename).relative_to(HERE.parent) if ours else Path(where.filename).name,
        where.lineno,
    )
    return _error_page(request, 500, "服务器内部错误，请稍后再试；如一再出现，请联系管理员查看日志。")


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    desk = desk_of(request)
    context = {"message": message, "status": status, "me": None, "csrf": "", "fresh": []}
    return desk.templates.TemplateResponse(request, "error.html", context, status_code=status)
