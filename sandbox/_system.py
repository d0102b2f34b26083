"""One simulated vertical system: its state, its login door and its control endpoints.

Each system kind (population, civil affairs, market supervision) is a ``SystemSpec``
that adds its own pages; everything they share lives here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp

from sandbox._accounts import DemoAccount, demo_accounts
from sandbox._captcha import Captcha, new_captcha
from sandbox._gate import END_MESSAGES, Gate, LoginRequired, Session, Wording
from sandbox._switches import Switches
from sandbox._traffic import CONTROL_PREFIX, Traffic, TrafficLog
from sandbox._world import World

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
T = TypeVar("T")
MSG_FORBIDDEN = "无权访问该记录：该记录不属于本账号所辖社区"


@dataclass(frozen=True)
class Dataset:
    """A set of records a system shows, with the column that names each record."""

    name: str
    key: str
    frame: Callable[[World], pd.DataFrame]


@dataclass(frozen=True)
class SystemSpec:
    code: str
    title: str
    prefix: str
    cookie_name: str
    home: str
    datasets: tuple[Dataset, ...]
    add_routes: Callable[[FastAPI, SandboxSystem], None]
    wording: Wording = field(default_factory=Wording)
    captcha_style: Callable[[random.Random], Captcha] = new_captcha
    login_page: str = "/login"  # where a request without a live session is sent
    login_post: str = "/login"  # where the login form posts (the ``login_fault`` switch hits it)
    # False: the system brings its own login page, captcha and logout routes (``add_routes``).
    standard_login: bool = True


class SandboxSystem:
    """A running simulation of one system over one synthetic world."""

    def __init__(self, spec: SystemSpec, world: World, switches: Switches | None = None) -> None:
        self.spec = spec
        self.world = world
        self.switches = switches or Switches()
        self._initial_switches = self.switches.model_copy()
        communities = [(c.code, c.name) for c in world.communities]
        self.accounts = demo_accounts(world.seed, spec.code, spec.prefix, communities)
        rng_seed = self._seed = f"{world.seed}/{spec.code}"
        self._rngs = (random.Random(rng_seed), random.Random(f"{rng_seed}/faults"))  # captchas, faults
        self.gate = Gate(
            {a.username: a for a in self.accounts},
            self.switches,
            self._rngs[0],
            wording=spec.wording,
            captcha_style=spec.captcha_style,
        )
        self.traffic = TrafficLog()
        whole = {ds.name: ds.frame(world) for ds in spec.datasets}
        self._scoped = {
            name: {code: part for code, part in frame.groupby("community", sort=False)}
            for name, frame in whole.items()
        }
        self._empty = {name: frame.iloc[0:0] for name, frame in whole.items()}  # a community with none
        self.url = ""
        self.app: ASGIApp = Traffic(
            _build_app(self),
            switches=self.switches,
            gate=self.gate,
            cookie_name=spec.cookie_name,
            login_post=spec.login_post,
            log=self.traffic,
            rng=self._rngs[1],
        )

    def __repr__(self) -> str:
        return f"SandboxSystem({self.spec.code}, url={self.url!r})"

    @property
    def code(self) -> str:
        return self.spec.code

    def account(self, community: str) -> DemoAccount:
        """The demo account of ``community`` (a community code such as ``donghu``)."""
        for account in self.accounts:
            if account.scope == community:
                return account
        raise KeyError(f"{self.code} has no account for community {community!r}")

    def scope_of(self, username: str) -> str:
        return self.gate.accounts[username].scope

    def scoped(self, dataset: str, username: str) -> pd.DataFrame:
        """The records of ``dataset`` that ``username`` may see, in the system's own order."""
        frames = self._scoped[dataset]
        scope = self.scope_of(username)
        return frames[scope] if scope in frames else self._empty[dataset]

    def truth(self, dataset: str, username: str) -> pd.DataFrame:
        """Ground truth for tests: exactly the records ``username`` is permitted to see."""
        return self.scoped(dataset, username).copy()

    def reset(self) -> None:
        """Back to the state it started in: switches as given, no sessions or lockouts, no traffic, and
        the captcha and fault draws from the start of their sequences (a test's faults do not depend
        on how many requests the tests before it made)."""
        # In place: the gate and the traffic middleware hold this very Switches object.
        for name in Switches.model_fields:
            setattr(self.switches, name, getattr(self._initial_switches, name))
        self.gate.reset()
        self.traffic.reset()
        captchas, faults = self._rngs
        captchas.seed(self._seed)
        faults.seed(f"{self._seed}/faults")

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {"system": self, "layout_changed": self.switches.layout_changed, **context},
            status_code=status_code,
        )

    def set_session_cookie(self, response: Response, token: str) -> None:
        """Give the browser this system's session cookie, as the systems' front doors do."""
        response.set_cookie(self.spec.cookie_name, token, httponly=True, samesite="lax")

    def user(self, request: Request) -> Session:
        """The logged-in session of this request, or ``LoginRequired``."""
        return self.gate.user(request.cookies.get(self.spec.cookie_name))

    def layout(self, normal: T, changed: T) -> T:
        """The page layout in force: ``changed`` while the layout-changed switch is on."""
        return changed if self.switches.layout_changed else normal

    def visible(self, session: Session, frame: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
        """The rows of ``frame`` where ``column == value``, if this session's scope may see them.

        Raises ``RecordRefused`` (404 or 403), which the app answers as HTML or JSON.
        """
        match = frame[frame[column] == value]
        if match.empty:
            raise RecordRefused(404, "记录不存在", session)
        if match.iloc[0]["community"] != self.scope_of(session.username or ""):
            raise RecordRefused(403, MSG_FORBIDDEN, session)
        return match


class RecordRefused(Exception):
    """A detail page asked for a record that does not exist (404) or is out of scope (403)."""

    def __init__(self, status: int, message: str, session: Session) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.session = session


def _safe_next(target: str, home: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else home


def _build_app(system: SandboxSystem) -> FastAPI:
    spec = system.spec
    app = FastAPI(title=spec.title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"code": 401, "msg": END_MESSAGES[exc.reason]}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            f"{spec.login_page}?{urlencode({'reason': exc.reason, 'next': target})}", status_code=303
        )

    @app.exception_handler(RecordRefused)
    async def refused(request: Request, exc: RecordRefused) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"code": exc.status, "msg": exc.message}, status_code=exc.status)
        return system.render(request, "error.html", exc.status, session=exc.session, message=exc.message)

    @app.get("/")
    async def root() -> Response:
        return RedirectResponse(spec.home, status_code=303)

    if spec.standard_login:
        _add_login_routes(app, system)
    _add_control_routes(app, system)
    spec.add_routes(app, system)
    return app


def _add_login_routes(app: FastAPI, system: SandboxSystem) -> None:
    """The common 用户名/密码/验证码 form of the first three systems."""
    spec = system.spec

    @app.get("/login")
    async def login_page(request: Request, reason: str = "", next: str = "") -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        response = _login_form(system, request, session, info=END_MESSAGES.get(reason, ""), next=next)
        system.set_session_cookie(response, session.token)
        return response

    @app.get("/captcha.png")
    async def captcha(request: Request) -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        response = Response(system.gate.new_captcha(session), media_type="image/png")
        response.headers["Cache-Control"] = "no-store"
        system.set_session_cookie(response, session.token)
        return response

    @app.post("/login")
    async def login(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        captcha: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        session = system.gate.anonymous(request.cookies.get(spec.cookie_name))
        result = system.gate.login(session, username.strip(), password, csrf_token, captcha)
        if result.session is None:
            response = _login_form(
                system,
                request,
                session,
                error=result.message,
                username=username,
                next=next,
                status=result.status,
            )
            system.set_session_cookie(response, session.token)
            return response
        response = RedirectResponse(_safe_next(next, spec.home), status_code=303)
        system.set_session_cookie(response, result.session.token)
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf_token: str = Form("")) -> Response:
        session = system.user(request)
        if csrf_token != session.csrf:
            return system.render(request, "error.html", 403, session=session, message="请求无效，请刷新页面")
        system.gate.logout(session)
        return RedirectResponse("/login?reason=logout", status_code=303)


def _login_form(
    system: SandboxSystem,
    request: Request,
    session: Session,
    *,
    info: str = "",
    error: str = "",
    username: str = "",
    next: str = "",
    status: int = 200,
) -> Response:
    return system.render(
        request,
        "login.html",
        status,
        csrf=session.csrf,
        captcha=system.switches.captcha,
        hashed=system.switches.hashed_password,
        info=info,
        error=error,
        username=username,
        next=next,
    )


def _add_control_routes(app: FastAPI, system: SandboxSystem) -> None:
    """Endpoints for tests and demos in other processes; real systems have nothing like them."""

    @app.get(f"{CONTROL_PREFIX}/switches")
    async def get_switches() -> dict[str, Any]:
        return system.switches.model_dump()

    @app.post(f"{CONTROL_PREFIX}/switches")
    async def set_switches(changes: dict[str, Any]) -> Response:
        try:
            for name, value in changes.items():
                system.switches.set_from_text(name, value)
        except ValueError as exc:  # pydantic's ValidationError is one too
            return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=422)
        return JSONResponse(system.switches.model_dump())

    @app.get(f"{CONTROL_PREFIX}/truth/{{dataset}}")
    async def truth(dataset: str, username: str) -> Response:
        if dataset not in {d.name for d in system.spec.datasets} or username not in system.gate.accounts:
            return JSONResponse({"detail": "unknown dataset or username"}, status_code=404)
        return Response(
            system.truth(dataset, username).to_json(orient="records", force_ascii=False),
            media_type="application/json",
        )

    @app.get(f"{CONTROL_PREFIX}/stats")
    async def stats() -> dict[str, Any]:
        return {
            "attempts": [a.__dict__ for a in system.gate.attempts],
            "sessions": [e.__dict__ for e in system.gate.events],
            "max_in_flight": system.traffic.max_in_flight,
            "busiest": system.gate.busiest,
            "faults": system.traffic.faults,
            "requests": len(system.traffic.requests),
        }

    @app.post(f"{CONTROL_PREFIX}/reset")
    async def reset() -> dict[str, str]:
        system.reset()
        return {"status": "reset"}

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)
