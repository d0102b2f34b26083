"""One account logged into one system: its browser context, its login, and every request it makes.

The session is where lockout safety lives, as an invariant rather than a list of texts:

- a password submission is *spent* (counted in the account's ledger, which outlives the run
  and the process, before it is sent) unless the system positively shows the logged-in proof,
  or a captcha miss we recognise;
- a rejected password, a lock, or an answer nothing recognises parks the account: the
  password is not sent again until a person acts;
- unexplained submissions (5xx, dropped connections, time-outs) may be retried only while
  the ledger stays below ``lockout_threshold - 1``; when one more would reach it, the account
  parks instead.

Chromium runs only while the session logs in or renders: after a login the fast path reads
through Playwright's own HTTP client with the login's cookies and the browser's user agent, and
the browser is given back (``Chromium``); a re-login or the first rendered page brings it back.

When the system sends us back to its login page mid-walk, one re-login serves every request
that saw it (they wait on one lock), and each retries where it stopped. Logged out again
soon after that means someone else is using the account: the run stops rather than end
their session in turn.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from loguru import logger
from playwright.async_api import APIRequestContext, Browser, BrowserContext, Page, Route
from selectolax.lexbor import LexborHTMLParser

from connectors._answers import says_expired, says_logged_out
from connectors._browser import Chromium
from connectors._captcha import SolverChain
from connectors._errors import (
    AccountLocked,
    BadCredentials,
    HarvestFailure,
    LoginUnconfirmed,
    LoginUnrecognised,
    NeedsHuman,
    SessionRenewed,
    SessionTaken,
    SystemUnavailable,
)
from connectors._fetcher import Fetched
from connectors._http_login import HttpAttempt, http_login
from connectors._login import Attempt, Credentials, LoginAttempt, LoginLedger, MemoryLedger, form_login
from connectors._polite import Polite
from connectors._recipe import LoginRecipe, MemoryBook, RecipeBook, RecipeStale, replayable, replays
from connectors._system import FormLogin, System

A = TypeVar("A", bound=Attempt)

BLOCKED_BY_DEFAULT = frozenset({"image", "font", "media"})
UNCONFIRMED_PAUSE_S = 2.0  # before re-sending a login form the system answered with 5xx
RELOGINS_PER_REQUEST = 2  # more means the system logs us out as fast as we log in: stop
RETAKEN_WITHIN_S = 900.0  # logged out again this soon after a re-login: someone else uses the account
CAPTCHA_MISSES = 12  # recognised captcha misses in one login before a person is asked
TIMEOUT_MS = 30_000
USER_AGENT_KEY = "user_agent"  # kept beside the cookies, so a saved session is read as the browser read it
EVIDENCE_MS = 3_000  # a page whose answer was cut off never finishes loading: do not wait for it


class Session:
    """An account's session on one system; ``open()`` it, then fetch and render through it."""

    def __init__(
        self,
        browser: Browser | Chromium,
        system: System,
        credentials: Callable[[], Credentials],
        *,
        account: str = "ACCOUNT",
        polite: Polite,
        solver: SolverChain,
        state: dict[str, Any] | None = None,
        recycle_pages: int = 200,
        allow: frozenset[str] = frozenset(),
        on_login: Callable[[list[str]], None] = lambda cookies: None,
        ledger: LoginLedger | None = None,
        recipes: RecipeBook | None = None,
    ) -> None:
        self.chromium = browser if isinstance(browser, Chromium) else Chromium.around(browser)
        self.system = system
        self.account = account
        self.polite = polite
        self.solver = solver
        self.recycle_pages = recycle_pages
        self.blocked = BLOCKED_BY_DEFAULT - allow
        self.logins = 0  # successful logins in this session (0: a saved session was reused)
        self.generation = 0  # bumped by every login; requests compare it to share one re-login
        self._credentials = credentials
        self.ledger = ledger or MemoryLedger()
        self._recipes = (
            recipes or MemoryBook()
        )  # how this account's login form posts, once a browser showed it
        self._relogged_at: float | None = None  # when the latest mid-walk re-login happened
        self._on_login = on_login  # told every cookie value a login brings, so logs can mask them
        self._state = state
        self._user_agent = (state or {}).get(USER_AGENT_KEY)
        self._context: BrowserContext | None = None  # while logging in or rendering: Chromium is held
        self._http: APIRequestContext | None = None  # between logins on the fast path: no Chromium
        self._retired: list[APIRequestContext] = []  # replaced by a re-login; a request may still hold one
        self._handover: dict[str, Any] | None = None  # a login's state, for the first request after it
        self._handing_over = asyncio.Lock()
        self._rendering = False  # a rendered step came: the browser context stays until the session closes
        self._page: Page | None = None
        self._rendered = 0
        self._relogin = asyncio.Lock()
        self._logging_in = False

    def __repr__(self) -> str:
        return f"Session({self.system.name}, logins={self.logins})"

    @property
    def context(self) -> BrowserContext:
        if self._context is None:
            raise RuntimeError("the session has no browser context now: call page() first")
        return self._context

    @property
    def request(self) -> Any:
        """What un-rendered requests go through now: Playwright's own client, or the browser context's."""
        if self._http is not None:
            return self._http
        if self._context is None:
            raise RuntimeError("the session is not open")
        return self._context.request

    async def open(self) -> None:
        """Reuse the saved session if the system still accepts it; otherwise log in once."""
        if self._state is not None:
            if self.chromium.on_demand and self._user_agent:
                self._http = await self._http_client(self._state)
            else:
                await self._enter_browser(self._state)
            if await self._proves_logged_in(self.request):
                logger.info("沿用 {} 已保存的会话", self.system.name)
                return
        await self.login()

    async def close(self) -> None:
        await self._leave_browser()
        for client in [*self._retired, *([self._http] if self._http is not None else [])]:
            await client.dispose()
        self._http, self._retired = None, []

    async def storage_state(self) -> dict[str, Any]:
        """Cookies and local storage, for the vault to keep (encrypted) until the next run."""
        if self._handover is not None:  # nothing was sent since the login read it
            state = dict(self._handover)
        elif self._http is not None or self._context is not None:
            state = dict(await (self._http or self.context).storage_state())
        else:
            raise RuntimeError("the session is not open")
        if self._user_agent:
            state[USER_AGENT_KEY] = self._user_agent
        return state

    async def login(self) -> None:
        """Log in, lockout-safe; raises a ``HarvestFailure`` whose ``parks`` says if the account must rest.

        On the fast path a login form that an earlier browser login showed to be plain is sent over
        HTTP (``_recipe``), without Chromium; every rule of the ledger holds for it alike.
        """
        self.solver.reset()
        recipe = self._replayable()
        if recipe is not None:
            try:
                await self._login_by_http(recipe)
                return
            except RecipeStale as exc:  # nothing was sent
                logger.info(
                    "{} 的登录页与上次浏览器登录时不同（{}）：这次用浏览器登录", self.system.name, exc
                )
                self._recipes.keep(None)
        await self._login_in_browser()

    async def _login_in_browser(self) -> None:
        if self._context is None:
            await self._enter_browser(await self.storage_state() if self._http is not None else self._state)
        page = await self.context.new_page()
        self._logging_in = True  # the captcha image must load
        try:

            async def once() -> tuple[str, LoginAttempt]:
                attempt = LoginAttempt(
                    self.system, self._credentials(), self.solver, self.polite, ledger=self.ledger, page=page
                )
                login = form_login if isinstance(self.system.login, FormLogin) else self.system.login
                return await self._attempt(attempt, login, self.context.request, page), attempt

            attempt = await self._decided(once, lambda attempt: _evidence(page))
            # Read while the page is open: with no page, Playwright opens one to read local storage.
            state = dict(await self.context.storage_state())
            self._user_agent = await page.evaluate("navigator.userAgent")
        finally:
            self._logging_in = False
            await page.close()
        if attempt.learned is not None and replayable(self.system):
            self._recipes.keep(attempt.learned.to_dict())
        self._logged_in(state)
        if self.chromium.on_demand and not self._rendering:
            self._handover = state  # the walk's first request decides: rendered, or Chromium goes

    async def _login_by_http(self, recipe: LoginRecipe) -> None:
        self._user_agent = recipe.user_agent
        client = await self._http_client({"cookies": [], "origins": []})
        try:

            async def once() -> tuple[str, HttpAttempt]:
                attempt = HttpAttempt(
                    self.system,
                    self._credentials(),
                    self.solver,
                    self.polite,
                    ledger=self.ledger,
                    client=client,
                    recipe=recipe,
                )
                return await self._attempt(attempt, http_login, client, None), attempt

            async def evidence(attempt: HttpAttempt) -> dict[str, bytes]:
                return {"login.html": attempt.answer.encode("utf-8")} if attempt.answer else {}

            await self._decided(once, evidence)
            state = dict(await client.storage_state())
        except BaseException as exc:
            await client.dispose()
            if isinstance(exc, HarvestFailure) and exc.parks:
                self._recipes.keep(None)  # after a person looks, the browser logs in (and learns) again
            raise
        if self._http is not None:
            self._retired.append(self._http)
        self._http, self._handover = client, None
        await self._leave_browser()
        self._logged_in(state)

    async def _decided(
        self,
        once: Callable[[], Awaitable[tuple[str, A]]],
        evidence: Callable[[A], Awaitable[dict[str, bytes]]],
    ) -> A:
        """Attempts until one is proven; raises the failure of the first that may not be repeated."""
        misses = unanswered = 0
        while True:
            self._check_budget()
            outcome, attempt = await once()
            if outcome == "ok":
                return attempt
            if outcome == "bad_captcha" and misses < CAPTCHA_MISSES:
                misses += 1
                continue  # a captcha miss is not a password miss: a fresh image, same password
            retries = self.polite.politeness.retries
            if outcome == "system_unavailable" and self._may_submit() and unanswered < retries:
                unanswered += 1  # bounded even when nothing was sent (a login page that never works)
                await asyncio.sleep(UNCONFIRMED_PAUSE_S)
                continue
            failure = _failure(outcome, self.system, self.account, attempt.message, self.ledger.spent())
            failure.evidence = await evidence(attempt)
            raise failure

    def _logged_in(self, state: dict[str, Any]) -> None:
        self._on_login([cookie["value"] for cookie in state["cookies"]])
        self.logins += 1
        self.generation += 1
        logger.info("已登录 {}（{}）", self.system.name, self.system.title)

    def _replayable(self) -> LoginRecipe | None:
        """The recipe to log in by, where the fast path would give Chromium back after the login."""
        if not self.chromium.on_demand or self._rendering:
            return None
        return replays(self.system, self._recipes.load())

    async def _hand_over(self) -> None:
        """Before an un-rendered request after a login: read on by Playwright's own client, and
        give Chromium back. Requests still answering on the old client finish there."""
        if self._handover is None:
            return
        async with self._handing_over:
            state, self._handover = self._handover, None
            if state is None:
                return
            if self._http is not None:
                self._retired.append(self._http)
            self._http = await self._http_client(state)
            await self._leave_browser()

    def _may_submit(self) -> bool:
        """One more unexplained submission keeps the ledger below ``lockout_threshold - 1``."""
        spent = self.ledger.spent()
        return spent == 0 or spent + 1 <= self.system.lockout_threshold - 2

    def _check_budget(self) -> None:
        if not self._may_submit():
            raise _failure("unconfirmed", self.system, self.account, "", self.ledger.spent())

    async def _attempt(
        self, attempt: A, login: Callable[[A], Awaitable[str]], client: Any, page: Page | None
    ) -> str:
        outcome: str = await login(attempt)
        if attempt.submitted:
            attempt.submitting()  # a custom login that only set ``submitted`` is counted too, late
        if outcome == "bad_captcha" and attempt.submitted:
            self.ledger.refund()  # the system said so: the password was not checked
        elif outcome in ("ok", "unknown"):
            if await self._proves_logged_in(client, page):
                self.ledger.confirm()
                return "ok"
            if outcome == "ok":
                attempt.message = (
                    f"登录后 {self.system.home} 上没有 {self.system.logged_in}。{attempt.message}"
                ).strip()
            outcome = "unknown" if attempt.submitted else "needs_human"
        return outcome

    async def relogin(self, seen_generation: int, *, expired: bool = False) -> None:
        """Log in again, once for every request that saw the same session end.

        Raises ``SessionTaken`` when the system ends a session it gave us shortly before, and
        its login page does not say the session timed out (``expired``): a person is using the
        same account, and logging in again would end theirs.
        """
        async with self._relogin:
            if self.generation != seen_generation:
                return
            now, last = asyncio.get_running_loop().time(), self._relogged_at
            if last is not None and now - last < RETAKEN_WITHIN_S and not expired:
                raise SessionTaken(
                    f"{self.system.title}（{self.system.name}/{self.account}）在机器人重新登录 "
                    f"{now - last:.0f} 秒后又结束了它的会话：很可能有人正在使用这个账号。"
                    "为了不挤掉对方的会话，本次运行已停止，没有发布任何数据；待账号空闲后再运行"
                )
            logger.warning("{} 把会话退回了登录页，正在重新登录", self.system.name)
            await self.login()
            self._relogged_at = asyncio.get_running_loop().time()

    async def fetch(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Fetched:
        """GET ``path`` through the logged-in session without rendering (the fast path); with
        ``form``, POST it as an HTML form would (an ASP.NET postback)."""
        url = self.system.url(path)
        what = what or urlsplit(url).path
        query = dict(params or {})

        async def get() -> Fetched:
            await self._hand_over()
            request = self.request  # at each try: a re-login may have replaced it
            if form is None:
                response = await request.get(url, params=query, timeout=TIMEOUT_MS)
            else:
                response = await request.post(url, params=query, form=dict(form), timeout=TIMEOUT_MS)
            body = await response.body()
            return Fetched(response.url, response.status, response.headers, body)

        return await self._until_logged_in(get, self._lost_reply, what, resend=form is None)

    async def render(self, path: str, *, what: str = "") -> Page:
        """Load ``path`` in the session's page, as a person's browser would; returns the page."""
        url = self.system.url(path)
        page = await self.page()

        async def goto() -> Any:
            return await page.goto(url, timeout=TIMEOUT_MS)

        await self._until_logged_in(goto, lambda reply: self.lost(page.url, 200), what or urlsplit(url).path)
        self._rendered += 1
        return page

    async def page(self) -> Page:
        """The page rendered requests use; a fresh context every ``recycle_pages`` pages bounds memory."""
        if not self._rendering:  # from now on the session renders: one cookie jar, the browser's
            self._rendering, state, self._handover = True, await self.storage_state(), None
            if self._context is None:
                await self._enter_browser(state)
            if self._http is not None:
                self._retired.append(self._http)
                self._http = None
        if self._page is not None and self._rendered >= self.recycle_pages:
            await self._recycle()
        if self._page is None:
            self._page = await self.context.new_page()
        return self._page

    async def screenshot(self, page: Page, path: Path) -> None:
        """A full-page screenshot with every password field masked."""
        path.parent.mkdir(parents=True, exist_ok=True)
        passwords = [page.locator("input[type=password]")]
        await page.screenshot(path=path, full_page=True, mask=passwords, timeout=EVIDENCE_MS)

    async def _until_logged_in(
        self,
        call: Callable[[], Awaitable[Any]],
        lost: Callable[[Any], bool],
        what: str,
        *,
        resend: bool = True,
    ) -> Any:
        """``call()``, logged in again (and sent again, if ``resend``) when it finds the session ended."""
        for _ in range(RELOGINS_PER_REQUEST + 1):
            generation = self.generation
            reply = await self.polite.fetch(call, what)
            if not lost(reply):
                return reply
            await self.relogin(generation, expired=says_expired(await _said(reply, self._page)))
            if not resend:
                raise SessionRenewed(f"{self.system.name} 已重新登录，表单须从列表首页重新提交（{what}）")
        raise SystemUnavailable(f"{self.system.name} 每次登录后随即又结束了会话（{what}）：稍后会自动重试")

    def lost(self, url: str, status: int) -> bool:
        """Did this response send us to the login page (or say 401)?"""
        return status == 401 or urlsplit(url).path == self.system.login_path

    def _lost_reply(self, reply: Fetched) -> bool:
        """``lost()``, or a short answer saying the session ended (``{"code": 1001, "msg": "登录超时"}``)."""
        return self.lost(reply.url, reply.status) or says_logged_out(reply.body)

    async def _proves_logged_in(self, client: Any, page: Page | None = None) -> bool:
        if page is not None and await page.locator(self.system.logged_in).count():
            return True
        reply = await self.polite.fetch(
            lambda: client.get(self.system.url(self.system.home), timeout=TIMEOUT_MS), "首页"
        )
        if self.lost(reply.url, reply.status) or reply.status >= 400:
            return False
        return LexborHTMLParser(await reply.text()).css_first(self.system.logged_in) is not None

    async def _enter_browser(self, state: dict[str, Any] | None) -> None:
        """Hold Chromium and open a browser context with ``state``."""
        self._context = await self._new_context(state)

    async def _leave_browser(self) -> None:
        """Close the browser context and give Chromium back."""
        context, self._context, self._page = self._context, None, None
        if context is not None:
            await context.close()
            await self.chromium.release()

    async def _http_client(self, state: dict[str, Any]) -> APIRequestContext:
        """Playwright's own HTTP client, sending what the browser context's client would."""
        assert self.chromium.playwright is not None
        return await self.chromium.playwright.request.new_context(
            storage_state=_cookies_and_storage(state), user_agent=self._user_agent, timeout=TIMEOUT_MS
        )

    async def _new_context(self, state: dict[str, Any] | None) -> BrowserContext:
        browser = await self.chromium.acquire()
        try:
            context = await browser.new_context(
                storage_state=_cookies_and_storage(state) if state is not None else None,  # type: ignore[arg-type]
                locale="zh-CN",
            )
        except BaseException:
            await self.chromium.release()
            raise
        context.set_default_timeout(TIMEOUT_MS)
        if self.blocked:
            # By file type in the URL, so that pages and API calls never wait on a trip to
            # Python; an image served without an extension still loads, which costs little.
            await context.route(_blocked_urls(self.blocked), self._route)
        return context

    async def _route(self, route: Route) -> None:
        if self._logging_in:  # the captcha image must load
            await route.continue_()
        else:
            await route.abort("blockedbyclient")

    async def _recycle(self) -> None:
        state = await self.storage_state()
        old = self._context
        self._context, self._page, self._rendered = await self._new_context(state), None, 0
        if old is not None:
            await old.close()
            await self.chromium.release()
        logger.debug("recycled the browser context of {}", self.system.name)


def _cookies_and_storage(state: dict[str, Any]) -> dict[str, Any]:
    """What Playwright takes as a storage state, out of what the session keeps."""
    return {key: state[key] for key in ("cookies", "origins") if key in state}


def _failure(outcome: str, system: System, account: str, said: str, spent: int) -> HarvestFailure:
    where = f"{system.title}（{system.name}/{account}）"
    said = f"登录时所见：{said}" if said else ""
    unpark = f"`harvest vault set {system.name} {account} --password`"
    if outcome == "bad_credentials":
        return BadCredentials(
            f"{where} 拒绝了密码：账号已停用，在有人用 {unpark} 更新密码之前不会再尝试登录。{said}"
        )
    if outcome == "locked":
        return AccountLocked(
            f"{where} 提示账号已被锁定：账号已停用，请联系该系统的管理员解锁，"
            f"然后运行 {unpark} 恢复使用。{said}"
        )
    if outcome == "unknown":
        return LoginUnrecognised(
            f"{where} 对登录的答复是机器人无法识别的页面，密码可能已被拒绝：为免账号被锁定，账号已停用。"
            f"请查看运行目录中的 login.png，如有疑问先人工登录一次，然后运行 {unpark}。{said}"
        )
    if outcome == "unconfirmed":
        return LoginUnconfirmed(
            f"{where} 自上次成功登录以来有 {spent} 次登录没有得到答复（出错或超时），而该系统输错 "
            f"{system.lockout_threshold} 次密码就会锁定账号：为免再冒一次险，账号已停用。"
            f"请先人工登录一次确认系统正常，然后运行 {unpark}。"
        )
    if outcome == "system_unavailable":
        return SystemUnavailable(f"{where} 没有答复登录表单，稍后会自动重试。{said}")
    return NeedsHuman(
        f"{where} 需要人工登录（OCR 无法识别的验证码，或机器人无法完成的步骤）：请在终端运行 "
        f"`harvest run ROBOT --account {account}` 并按提示输入。{said}"
    )


async def _said(reply: Any, page: Page | None) -> str:
    """The text of the answer that ended a session: a fetched body, or the rendered page."""
    if isinstance(reply, Fetched):
        return reply.text[:4096]
    try:
        return await page.inner_text("body") if page is not None else ""
    except Exception:  # a page that navigated on: the reason is lost, which counts as not expired
        return ""


async def _evidence(page: Page) -> dict[str, bytes]:
    """The login page as the robot last saw it, password fields masked, for the run's folder."""
    files: dict[str, bytes] = {}
    try:
        files["login.html"] = (await page.content()).encode("utf-8")
        passwords = [page.locator("input[type=password]")]
        files["login.png"] = await page.screenshot(full_page=True, mask=passwords, timeout=EVIDENCE_MS)
    except Exception as exc:  # evidence is best effort: never hide the login's own failure
        logger.debug("no login evidence: {}", exc)
    return files


EXTENSIONS = {
    "image": "png|jpe?g|gif|webp|svg|ico|bmp",
    "font": "woff2?|ttf|otf|eot",
    "media": "mp4|webm|mp3|ogg|wav|m4a",
}


def _blocked_urls(kinds: frozenset[str]) -> re.Pattern[str]:
    types = "|".join(EXTENSIONS[kind] for kind in sorted(kinds))
    return re.compile(rf"\.({types})(\?|#|$)", re.IGNORECASE)
