"""A login form sent over HTTP as a browser login on this system showed it is sent (``_recipe``).

Only the transport differs from ``_login.form_login``: the same ledger is spent before the
password leaves, the answer is judged by the same rules (the logged-in proof, the recognised
texts, the statuses), and an answer nothing recognises is ``unknown``, which parks the account
unless the session proves it is logged in. What a browser would show are the answer's own new
lines and the texts of its ``alert()`` calls, or a JSON answer's own words.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from playwright.async_api import APIRequestContext, APIResponse
from playwright.async_api import Error as PlaywrightError
from selectolax.lexbor import LexborHTMLParser

from connectors._answers import answered, json_words
from connectors._login import ANSWER_WAIT_S, Attempt
from connectors._recipe import (
    FORM_TYPE,
    JSON_TYPE,
    LoginRecipe,
    RecipeStale,
    Served,
    Typed,
    captcha_src,
    check_cookies,
    fill,
    post_url,
)
from connectors._system import FormLogin, LoginOutcome

ALERT = re.compile(r"""\balert\(\s*(['"])(.{1,300}?)\1\s*\)""")


@dataclass
class HttpAttempt(Attempt):
    """One login by HTTP: the client it goes through, and the recipe it follows."""

    client: APIRequestContext = field(kw_only=True)
    recipe: LoginRecipe = field(kw_only=True)
    answer: str = ""  # what the system answered the POST, for the run's evidence


async def http_login(attempt: HttpAttempt) -> LoginOutcome:
    """Send the form once as the recipe says and judge the answer; ``RecipeStale`` (nothing sent)
    when the login page is not the one the recipe was learned on."""
    system, client, recipe = attempt.system, attempt.client, attempt.recipe
    form = system.login
    assert isinstance(form, FormLogin)
    page_url = system.url(form.path)
    page = await attempt.polite.fetch(lambda: client.get(page_url), "登录页")
    if page.status >= 400:  # 5xx are retried by the gate; a page that is not there is the browser's to say
        raise RecipeStale(f"登录页返回 HTTP {page.status}")
    served = Served.of(await page.body(), page.headers.get("content-type", ""))
    if urlsplit(page.url).path != urlsplit(page_url).path:
        raise RecipeStale(f"登录页转到了 {urlsplit(page.url).path}")
    typed = Typed(attempt.credentials.username, attempt.credentials.password.reveal(), totp=attempt.totp())
    if recipe.has("captcha"):
        src = urljoin(page.url, captcha_src(served, recipe))
        picture = await attempt.polite.fetch(lambda: client.get(src), "验证码")
        answer = await attempt.solver.solve(await picture.body()) if picture.ok else None
        if answer is None:
            attempt.message = "验证码 OCR 未能识别，也没有人工输入"
            return "needs_human"
        if not answer:
            attempt.message = "OCR 在验证码图片中没有读出任何字符"
            return "bad_captcha"
        typed = dataclasses.replace(typed, captcha=answer)
    body = fill(recipe, served, typed)
    target = post_url(recipe, served, page.url)
    check_cookies(recipe, {cookie["name"] for cookie in (await client.storage_state())["cookies"]})
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    headers = {"referer": page.url, "origin": origin}
    if recipe.xhr:
        headers["x-requested-with"] = "XMLHttpRequest"
    if recipe.encoding == "form":  # in the page's charset, as the browser encodes a form
        headers["content-type"] = FORM_TYPE
        data = urlencode(body, encoding=recipe.charset)
    else:
        headers["content-type"] = JSON_TYPE
        data = json.dumps(body, ensure_ascii=False)
    attempt.submitting()
    try:
        async with attempt.polite.slot():
            reply = await client.post(target, headers=headers, data=data, timeout=ANSWER_WAIT_S * 1000)
            attempt.answer = Served.of(await reply.body(), reply.headers.get("content-type", "")).text
    except PlaywrightError as exc:
        attempt.message = f"系统答复登录时连接中断或超时（{str(exc).splitlines()[0][:200]}）"
        return "system_unavailable"
    return _judge(reply, attempt.answer, served.text, form, system.logged_in, attempt)


def _judge(
    reply: APIResponse, text: str, served: str, form: FormLogin, logged_in: str, attempt: Attempt
) -> LoginOutcome:
    is_json = "json" in reply.headers.get("content-type", "")
    away = urlsplit(reply.url).path != form.path
    if is_json:
        words = json_words(text)
        said = text[:300] if words is None else words
    else:
        tree = LexborHTMLParser(text)
        said = _new_text(tree, text, served, form.error)
        if reply.status < 400 and away and tree.css_first(logged_in) is not None:
            return "ok"
    attempt.message = said[:300]
    if reply.status >= 500:
        attempt.message = f"登录表单返回 HTTP {reply.status}"
        return "system_unavailable"
    outcome = answered(said, reply.status, form.messages)
    if outcome is not None:
        return outcome
    return "ok" if away and not is_json else "unknown"  # the session proves "ok", or it is unknown


def _new_text(tree: LexborHTMLParser, text: str, served: str, extra: str | None) -> str:
    """What a browser showing the answer would show that the login page did not: new lines, the
    answer's own ``alert()`` texts, and the declared error place."""
    before = LexborHTMLParser(served)
    old_lines = set(_lines(before))
    seen = [line for line in _lines(tree) if line not in old_lines]
    old_alerts = {m[2] for m in ALERT.finditer(served)}
    seen += [m[2] for m in ALERT.finditer(text) if m[2] not in old_alerts]
    if extra:
        seen += [node.text(separator=" ") for node in tree.css(extra)]
    unique = dict.fromkeys(" ".join(line.split()) for line in seen)
    return " ".join(line for line in unique if line)


def _lines(tree: LexborHTMLParser) -> list[str]:
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    body = tree.body
    text = body.text(separator="\n") if body is not None else ""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]
