"""One login attempt through a system's form, classified by what the system answered.

The policy around attempts (the spent-submission ledger, parking, how many captchas to
read) lives in ``Session.login``; this module finds the form, fills it, submits it once,
and watches what comes back: the requests the click sent, every text the page shows that
it did not show before (toasts that vanish included), and ``alert()`` dialogs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import pyotp
from playwright.async_api import Dialog, Page, Request, Response
from playwright.async_api import Error as PlaywrightError

from connectors._answers import answered
from connectors._captcha import SolverChain
from connectors._errors import LoginFormMissing, NeedsHuman
from connectors._polite import Polite
from connectors._recipe import LoginRecipe, Posted, Served, Typed, known_charset, learn
from connectors._system import FormLogin, LoginOutcome, System

FORM_WAIT_MS = 10_000  # how long a login page may take to show its password field
QUIET_S = 0.6  # nothing in flight for this long after the click: the system has answered
PROOF_POLL_S = 0.05  # how often the page is asked for the logged-in proof while it settles
ANSWER_WAIT_S = 30.0  # a login POST unanswered for this long is a time-out (spent, unexplained)
SETTLE_LOAD_MS = 2_000  # then the page's own document is parsed, or never will be
NOTHING_SENT_S = 3.0  # a click that sends no request in this time was refused by the page itself
MARK = "data-gridharvest-login"  # the attribute the form finder puts on what it found


class Revealable(Protocol):
    """A secret that shows its value only when asked (the vault's ``Secret``)."""

    def reveal(self) -> str: ...


class LoginLedger(Protocol):
    """The account's count of spent, unconfirmed password submissions, kept across runs."""

    def spent(self) -> int: ...

    def spend(self) -> int: ...

    def refund(self) -> None: ...

    def confirm(self) -> None: ...


@dataclass
class MemoryLedger:
    """A ledger that lives as long as the process (tests, ``harvest new``); the vault keeps the real one."""

    count: int = 0

    def spent(self) -> int:
        return self.count

    def spend(self) -> int:
        self.count += 1
        return self.count

    def refund(self) -> None:
        self.count = max(0, self.count - 1)

    def confirm(self) -> None:
        self.count = 0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Revealable
    totp_seed: Revealable | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


@dataclass
class Attempt:
    """What one login attempt of any kind uses and keeps: the ledger, what the system said."""

    system: System
    credentials: Credentials
    solver: SolverChain
    polite: Polite
    ledger: LoginLedger = field(default_factory=MemoryLedger)
    message: str = ""  # what the system said, for the run's failure message
    submitted: bool = False  # a password went to the system
    counted: bool = False  # ... and the ledger has it
    learned: LoginRecipe | None = None  # how to send the same without a browser, if it can be

    def submitting(self) -> None:
        """Say so right before the password leaves: it counts as spent until the system proves otherwise.

        Counted first, so that a process killed while the system is answering still counts it.
        """
        self.submitted = True
        if not self.counted:
            self.counted = True
            self.ledger.spend()

    def not_sent(self) -> None:
        """The page refused the form itself (nothing left it): the submission is not spent."""
        if self.counted:
            self.ledger.refund()
        self.submitted = self.counted = False

    def totp(self) -> str | None:
        seed = self.credentials.totp_seed
        if seed is None:
            return None
        try:
            return pyotp.TOTP(seed.reveal()).now()
        except (ValueError, TypeError) as exc:  # not base32, or too short for pyotp: never print it
            raise NeedsHuman(
                f"{self.system.name}/{self.credentials.username} 的 TOTP 种子无法使用"
                f"（{type(exc).__name__}）：请用 `harvest vault set … --totp` 设置正确的种子"
            ) from None


@dataclass
class LoginAttempt(Attempt):
    """Everything one login attempt in the browser may use; a custom login function receives this."""

    page: Page = field(kw_only=True)


async def form_login(attempt: LoginAttempt) -> LoginOutcome:
    """Fill and submit the form once and say how the system answered (see ``LoginOutcome``)."""
    page, system = attempt.page, attempt.system
    form = system.login
    assert isinstance(form, FormLogin)
    broken, served = await _load_login_page(page, system, form, attempt.polite)
    found = await find_form(page, form, system)
    typed = Typed(attempt.credentials.username, attempt.credentials.password.reveal())
    await page.fill(found["username"], typed.username)
    await page.fill(found["password"], typed.password)
    if "captcha_input" in found:
        answer = await attempt.solver.solve(await captcha_image(page, found["captcha_image"]))
        if answer is None:
            attempt.message = "验证码 OCR 未能识别，也没有人工输入"
            return "needs_human"
        if not answer:
            attempt.message = "OCR 在验证码图片中没有读出任何字符"
            return "bad_captcha"  # not submitted: a fresh image, no password spent
        await page.fill(found["captcha_input"], answer)
        src = await page.locator(found["captcha_image"]).first.get_attribute("src")
        typed = dataclasses.replace(typed, captcha=answer, captcha_image=src)
    code = attempt.totp()
    totp = form.totp_input or "input[autocomplete=one-time-code]"
    if code is not None and await page.locator(totp).first.is_visible():
        await page.fill(totp, code)
        typed = dataclasses.replace(typed, totp=code)
    watch = await Watch.start(page)
    try:
        attempt.submitting()
        async with attempt.polite.slot():
            if "submit" in found:
                await page.click(found["submit"], no_wait_after=True)
            else:
                await page.press(found["password"], "Enter", no_wait_after=True)
        await watch.settle(lambda: _logged_in(page, form, system))
    finally:
        watch.stop()
    outcome = await _judge(page, form, system, attempt, watch)
    if outcome in ("ok", "unknown") and served:  # the session keeps it once the login is proven
        attempt.learned = learn(
            served, system.url(form.path), await watch.posted(), typed, await _agent(page)
        )
    if outcome == "needs_human" and not attempt.submitted and broken:
        attempt.message = f"登录页自身的 {broken} 未能加载，表单因此没有发出任何请求"
        return "system_unavailable"  # nothing was spent: a later attempt on a whole page is safe
    return outcome


async def _load_login_page(
    page: Page, system: System, form: FormLogin, polite: Polite
) -> tuple[str, Served | None]:
    """Open the login page; returns what of its scripts or API calls failed ("" if nothing did), and
    the page as served (None if it could not be read)."""
    broken: list[str] = []

    def failed(request: Request, why: str) -> None:
        if request.resource_type in ("script", "xhr", "fetch"):
            broken.append(f"{request.resource_type} {urlsplit(request.url).path} ({why})")

    def answered(response: Response) -> None:
        if response.status >= 500:
            failed(response.request, f"HTTP {response.status}")

    def dropped(request: Request) -> None:
        failed(request, request.failure or "failed")

    page.on("response", answered)
    page.on("requestfailed", dropped)
    served: Served | None = None
    try:
        response = await polite.fetch(lambda: page.goto(system.url(form.path)), "登录页")
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_load_state("load", timeout=FORM_WAIT_MS)
            if response is not None:  # the browser hands a page's text over decoded, whatever its charset
                charset = known_charset(await page.evaluate("document.characterSet"))
                served = Served(await response.text(), charset)
    finally:
        page.remove_listener("response", answered)
        page.remove_listener("requestfailed", dropped)
    return (broken[0] if broken else ""), served


async def _agent(page: Page) -> str:
    try:
        return str(await page.evaluate("navigator.userAgent"))
    except PlaywrightError:
        return ""


async def _judge(
    page: Page, form: FormLogin, system: System, attempt: LoginAttempt, watch: Watch
) -> LoginOutcome:
    said = await watch.new_text(form.error)
    attempt.message = said[:300]
    if watch.dropped:
        attempt.message = f"系统答复登录时连接中断（{watch.dropped}）"
        return "system_unavailable"
    if watch.status >= 500:
        attempt.message = f"登录表单返回 HTTP {watch.status}"
        return "system_unavailable"
    if watch.timed_out:
        attempt.message = f"系统在 {ANSWER_WAIT_S:g} 秒内没有答复登录表单"
        return "system_unavailable"
    if not watch.sent:
        attempt.not_sent()
        attempt.message = f"提交登录表单时页面没有发出任何请求；页面显示：{said or '-'}"
        return "needs_human"
    away = urlsplit(page.url).path != form.path
    if away and await _shows(page, system.logged_in):
        return "ok"
    outcome = answered(said, watch.status, form.messages)
    if outcome is not None:
        return outcome
    return "ok" if away else "unknown"  # the session proves "ok" on a logged-in page, or it is unknown


async def _logged_in(page: Page, form: FormLogin, system: System) -> bool:
    """The positive proof: away from the login page, and the logged-in selector shows."""
    return urlsplit(page.url).path != form.path and await _shows(page, system.logged_in)


async def _shows(page: Page, selector: str) -> bool:
    try:
        return await page.locator(selector).count() > 0
    except PlaywrightError:  # the page navigated while we looked
        return False


async def find_form(page: Page, form: FormLogin, system: System) -> dict[str, str]:
    """Selectors of the form's parts: declared ones as they are, the others found by the password field.

    Raises ``LoginFormMissing`` (nothing sent) when there is no password field, or a declared
    input is not on the page.
    """
    password = form.password or "input[type=password]"
    try:
        await page.locator(password).first.wait_for(state="visible", timeout=FORM_WAIT_MS)
    except PlaywrightError:
        what = f"声明的密码框 {form.password!r}" if form.password else "密码框"
        raise LoginFormMissing(
            f"{system.title}（{system.name}）：{page.url} 没有登录表单：{what}在 {FORM_WAIT_MS // 1000} 秒内"
            "没有出现，未发送任何内容；请检查系统声明中的 FormLogin(path=…) 及其选择器"
        ) from None
    marked: dict[str, bool] = await page.evaluate(FIND_FORM_JS, [MARK, form.password])
    found = {role: f"[{MARK}={role}]" for role, present in marked.items() if present}
    for role in ("username", "password", "submit", "captcha_input", "captcha_image"):
        declared = getattr(form, role)
        if declared is not None:
            found[role] = declared
    if "captcha_input" in found and "captcha_image" not in found:
        del found["captcha_input"]  # a code field without a picture is an SMS or TOTP code, not ours to read
    for role in ("username", "submit", "captcha_input"):
        declared = getattr(form, role)
        if declared is not None and not await page.locator(declared).count():
            raise LoginFormMissing(
                f"{system.title}（{system.name}）：登录页 {page.url} 上找不到 FormLogin({role}=…) 声明的 "
                f"{declared!r}，未发送任何内容；请改正这个选择器，或删去它，由框架按密码框找到表单"
            )
    if "username" not in found:
        raise LoginFormMissing(
            f"{system.title}（{system.name}）：登录页 {page.url} 有密码框，但它前面没有用户名输入框，"
            "未发送任何内容；请声明 FormLogin(username=…)"
        )
    return found


async def captcha_image(page: Page, selector: str) -> bytes:
    """The captcha picture at its own size (not a screenshot at the size the page displays it)."""
    picture = page.locator(selector).first
    await picture.evaluate("img => img.decode ? img.decode().catch(() => null) : null")  # loaded
    try:
        data = await picture.evaluate(NATURAL_IMAGE_JS)
    except PlaywrightError:
        data = None
    if isinstance(data, str) and data.startswith("data:image/png;base64,"):
        return base64.b64decode(data.split(",", 1)[1])
    return await picture.screenshot()  # drawn from another origin: the canvas is tainted


class Watch:
    """What the page does after the click: requests sent and answered, dialogs, text that appears."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent = 0  # documents and API calls the click set off
        self.in_flight = 0
        self.status = 0  # the worst status a POST or document got: 5xx over 4xx over the rest
        self.dropped = ""  # a POST or document that failed on the way
        self.timed_out = False
        self.dialogs: list[str] = []
        self.posts: list[Request] = []  # what the click posted, to learn how to post it without a browser
        self._before: set[str] = set()
        self._pending: set[asyncio.Future[None]] = set()
        self._quiet_since = asyncio.get_running_loop().time()
        self._handlers: list[tuple[str, Any]] = [
            ("request", self._on_request),
            ("requestfinished", self._on_finished),
            ("requestfailed", self._on_failed),
            ("response", self._on_response),
            ("dialog", self._on_dialog),
        ]

    @classmethod
    async def start(cls, page: Page) -> Watch:
        watch = cls(page)
        watch._before = set(await _lines(page))
        await page.evaluate(OBSERVE_JS)
        for event, handler in watch._handlers:
            page.on(event, handler)  # type: ignore[call-overload]
        return watch

    def stop(self) -> None:
        for event, handler in self._handlers:
            self.page.remove_listener(event, handler)  # type: ignore[arg-type]

    async def settle(self, proven: Callable[[], Awaitable[bool]]) -> None:
        """Wait until the system has answered and the page has gone quiet, or shows it is logged in.

        Quiet is what tells an answer nobody recognises from one still arriving; the logged-in
        proof is the answer itself, so once the page shows it nothing later can change the outcome.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(PROOF_POLL_S)
            now = loop.time()
            if self.in_flight:
                if now - started > ANSWER_WAIT_S:
                    self.timed_out = True
                    return
                continue
            if not self.sent and now - started < NOTHING_SENT_S:
                continue
            if now - self._quiet_since >= QUIET_S or (self.sent and await proven()):
                break
        with contextlib.suppress(PlaywrightError):  # a dropped answer never finishes loading
            await self.page.wait_for_load_state("domcontentloaded", timeout=SETTLE_LOAD_MS)

    async def new_text(self, extra: str | None) -> str:
        """Every text the page shows now (or showed for a moment) that it did not show before the click."""
        seen: list[str] = list(self.dialogs)
        try:
            seen += await self.page.evaluate("() => window.__gridharvestTexts || []")
            seen += [line for line in await _lines(self.page) if line not in self._before]
            if extra:
                seen += await self.page.locator(extra).all_inner_texts()
        except PlaywrightError:  # the page went on navigating: what we caught is what there is
            pass
        unique = dict.fromkeys(" ".join(text.split()) for text in seen)
        return " ".join(text for text in unique if text)

    def _counts(self, request: Request) -> bool:
        return request.resource_type in ("document", "xhr", "fetch") or request.method == "POST"

    async def posted(self) -> list[Posted]:
        """The POSTs the click sent, as the browser sent them."""
        posts = []
        for request in self.posts:
            try:
                headers = await request.all_headers()
            except PlaywrightError:
                headers = {"x-unknown": "the request is gone"}  # so that nothing is learned from it
            posts.append(Posted(request.url, request.method, headers, request.post_data))
        return posts

    def _on_request(self, request: Request) -> None:
        if request.method == "POST":
            self.posts.append(request)
        if self._counts(request):
            self.sent += 1
            self.in_flight += 1

    def _on_finished(self, request: Request) -> None:
        if self._counts(request):
            self._done()

    def _on_failed(self, request: Request) -> None:
        if self._counts(request):
            self._done()
            failure = request.failure or "failed"
            if "ERR_ABORTED" not in failure:  # a navigation that replaced another is no drop
                self.dropped = f"{request.method} {urlsplit(request.url).path}: {failure}"

    def _on_response(self, response: Response) -> None:
        request = response.request
        if self._counts(request) and _worse(response.status, self.status):
            self.status = response.status

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        self._pending.add(task := asyncio.ensure_future(_dismiss(dialog)))
        task.add_done_callback(self._pending.discard)

    def _done(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._quiet_since = asyncio.get_running_loop().time()


def _worse(status: int, than: int) -> bool:
    def rank(code: int) -> int:
        return 3 if code >= 500 else 2 if code in (401, 403, 429) else 1 if code else 0

    return rank(status) > rank(than)


async def _dismiss(dialog: Dialog) -> None:
    with contextlib.suppress(PlaywrightError):  # the page may be gone already
        await dialog.accept()


async def _lines(page: Page) -> list[str]:
    text = await page.evaluate("() => document.body ? document.body.innerText : ''")
    return [" ".join(line.split()) for line in str(text).splitlines() if line.strip()]


# Text added to the page after the click, kept even if the page removes it again (toasts).
OBSERVE_JS = """() => {
  window.__gridharvestTexts = [];
  const keep = t => { t = (t || '').trim(); if (t) window.__gridharvestTexts.push(t.slice(0, 300)); };
  new MutationObserver(changes => {
    for (const change of changes) {
      if (change.type === 'characterData') keep(change.target.textContent);
      for (const node of change.addedNodes) keep(node.innerText || node.textContent);
    }
  }).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
}"""

NATURAL_IMAGE_JS = """el => {
  if (el instanceof HTMLCanvasElement) return el.toDataURL('image/png');
  const canvas = document.createElement('canvas');
  canvas.width = el.naturalWidth; canvas.height = el.naturalHeight;
  canvas.getContext('2d').drawImage(el, 0, 0);
  return canvas.toDataURL('image/png');
}"""

# Marks the login form's parts, starting from its visible password field: the smallest
# ancestor that also holds something clickable is the form (a <form>, or a layui <div>).
FIND_FORM_JS = """([mark, declared]) => {
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
    && getComputedStyle(el).visibility !== 'hidden';
  const password = [...document.querySelectorAll(declared || 'input[type=password]')].find(visible);
  if (!password) return {};
  const clickables = scope => [...scope.querySelectorAll(
    'button, input[type=submit], input[type=button], input[type=image], a, [lay-submit], '
    + '[role=button], [onclick]'
  )].filter(visible);
  let scope = password.form || password.parentElement;
  while (scope && scope !== document.body && !clickables(scope).length) scope = scope.parentElement;
  scope = scope || document.body;
  const CODE = new RegExp('captcha|verif|vcode|yzm|checkcode|validcode|validatecode|randcode|authcode|'
    + 'imgcode|piccode|kaptcha|验证码|校验码', 'i');
  const codeLike = el => [el.name, el.id, el.className, el.placeholder, el.getAttribute('aria-label'),
    el.getAttribute('src'), el.alt, el.title]
    .some(v => typeof v === 'string' && (CODE.test(v) || /^code$/i.test(v)));
  const NOT_TEXT = ['hidden', 'password', 'checkbox', 'radio', 'submit', 'button', 'image', 'file', 'reset'];
  const textual = i => !NOT_TEXT.includes((i.getAttribute('type') || 'text').toLowerCase());
  const inputs = [...scope.querySelectorAll('input')].filter(i => visible(i) && textual(i));
  const before = i => i.compareDocumentPosition(password) & Node.DOCUMENT_POSITION_FOLLOWING;
  const username = inputs.filter(i => before(i) && !codeLike(i)).pop() || inputs.find(i => !codeLike(i));
  const image = [...scope.querySelectorAll('img, canvas')].filter(visible).find(codeLike);
  const captcha = inputs.find(i => i !== username && codeLike(i))
    || (image ? inputs.find(i => i !== username && !before(i)) : undefined);
  const said = el => (el.innerText || el.value || '').replace(/\\s/g, '');
  const buttons = clickables(scope).filter(el => !codeLike(el));
  const submit = buttons.find(b => b.matches('button[type=submit], input[type=submit], input[type=image]'))
    || buttons.find(b => /^(登录|登入|登陆|确定|提交|login|signin|log in|sign in)$/i.test(said(b)))
    || buttons.find(b => b.form && b.form === password.form
                         && b.matches('button:not([type=button]):not([type=reset])'));
  const parts = {username, password, submit, captcha_input: captcha, captcha_image: image};
  const found = {};
  for (const [role, el] of Object.entries(parts)) {
    if (el) { el.setAttribute(mark, role); found[role] = true; }
  }
  return found;
}"""
