"""What systems say after a login, recognised without the robot author declaring a word.

The texts are the common Chinese and English ones. Recognising a text is never what keeps
an account safe: an answer that matches nothing here is treated as a spent, unexplained
password submission and parks the account (see ``Session.login``). The one recognition
that allows the password to be sent again is a captcha miss, so its patterns are the
tightest: a captcha word next to a word of rejection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from connectors._system import LoginOutcome

REJECTIONS = (
    *("错", "误", "不正确", "不对", "有误", "不匹配", "不符", "无效", "失效", "过期", "已使用"),
    *("invalid", "incorrect", "wrong", "error", "expired", "mismatch"),
)
_REJECTED = f"({'|'.join(REJECTIONS)})"
_CAPTCHA = r"(验证码|校验码|图形码|图片码|captcha|verification code|verify code|security code)"

# In the order they are tried: a text that says both "locked" and "wrong password" is a lock.
PATTERNS: tuple[tuple[LoginOutcome, re.Pattern[str]], ...] = (
    (
        "locked",
        re.compile(
            r"锁定|冻结|已被锁|被禁用|已禁用|已停用|次数过多|次数超|过于频繁|频繁登录|"
            r"\blocked\b|too many|temporarily (blocked|disabled)|suspended",
            re.I,
        ),
    ),
    (
        "bad_captcha",
        re.compile(
            rf"{_CAPTCHA}[^，。,.!！;；]{{0,8}}{_REJECTED}|{_REJECTED}的?{_CAPTCHA}|"
            rf"请(输入|填写){_CAPTCHA}|{_CAPTCHA}不能为空|{_CAPTCHA} (is )?required",
            re.I,
        ),
    ),
    (
        "bad_credentials",
        re.compile(
            r"(密码|口令|password)[^，。,.!！;；]{0,10}(错|误|不正确|不对|有误|不匹配|无效|incorrect|wrong|invalid)|"
            r"(用户名|用户|账号|帐号|账户|帐户|登录名|工号|user ?name|account)[^。.!！;；]{0,12}"
            r"(不存在|不正确|错误|有误|无效|not exist|not found|incorrect|invalid|unknown)|"
            r"(用户名|账号|帐号|登录名|用户)(或|/|和)(密码|口令)|认证失败|身份验证失败|登录失败|登陆失败|"
            r"(user ?name|account|login|email)( or |/)password|"
            r"invalid (credentials|login)|authentication failed|login failed|bad credentials",
            re.I,
        ),
    ),
    (
        "system_unavailable",
        re.compile(
            r"系统繁忙|服务不可用|服务器(繁忙|错误|异常)|系统(异常|错误|维护)|网络(异常|错误)|稍后再试|"
            r"service unavailable|internal server error|try again later",
            re.I,
        ),
    ),
)

# What an API or a small page says when the session behind a request has ended.
LOGGED_OUT = re.compile(
    r"(登录|登陆)[^，。,.!！]{0,6}(超时|过期|失效|已失效)|未登录|请(先|重新)(登录|登陆)|"
    r"会话[^，。,.!！]{0,4}(过期|失效|超时)|(令牌|token)[^，。,.!！]{0,6}(过期|失效|无效|expired|invalid)|"
    r"session[^,.!]{0,12}(expired|timed? ?out|invalid)|not logged in|login required",
    re.I,
)
# Why a session ended, as the login page it sent us to says: a kick means another login.
KICKED = re.compile(
    r"其他地方|其它地方|别处|异地|另一(处|地|台)|已在.{0,8}登录|被迫下线|挤下线|强制下线|顶下线|"
    r"logged in (elsewhere|from another)|another (device|location|session)",
    re.I,
)
EXPIRED = re.compile(r"超时|过期|已过时|expired|timed? ?out|timeout|inactiv", re.I)
LOGGED_OUT_MAX_BYTES = 4096  # a list page is longer; a "please log in" answer is not


def classify(
    text: str, declared: Mapping[LoginOutcome, tuple[str, ...]] | None = None
) -> LoginOutcome | None:
    """The outcome ``text`` states, or ``None`` when it states nothing we know.

    ``declared`` texts (a system's ``FormLogin(messages=…)``) are tried first, as substrings.
    """
    folded = text.casefold()
    for outcome, needles in (declared or {}).items():
        if any(needle.casefold() in folded for needle in needles):
            return outcome
    for outcome, pattern in PATTERNS:
        if pattern.search(text):
            return outcome
    return None


def answered(
    text: str, status: int, declared: Mapping[LoginOutcome, tuple[str, ...]] | None = None
) -> LoginOutcome | None:
    """What a login's answer states: its words first, then its status (401/403 a rejected password,
    429 a lock); ``None`` when neither says anything we know."""
    outcome = classify(text, declared)
    if outcome is None and status in (401, 403):
        return "bad_credentials"
    if outcome is None and status == 429:
        return "locked"
    return outcome


def says_logged_out(body: bytes | str) -> bool:
    """Does this short answer say that the session has ended (``{"code": 1001, "msg": "登录超时"}``)?"""
    if len(body) > LOGGED_OUT_MAX_BYTES:
        return False
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    said = json_words(text)
    if said is None:
        return LOGGED_OUT.search(text) is not None  # a short page: "请先登录" and a script redirect
    return LOGGED_OUT.search(said) is not None


def json_words(text: str) -> str | None:
    """A JSON answer's own top-level words (``{"code": 1, "msg": "密码错误"}``: 密码错误), None if it is
    not JSON. Only they count: a record's "未登录" status, deeper down, is data."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return " ".join(v for v in answer.values() if isinstance(v, str)) if isinstance(answer, dict) else ""


def says_expired(text: str) -> bool:
    """Does the page a lost session landed on say it timed out (and not that someone else logged in)?"""
    return KICKED.search(text) is None and EXPIRED.search(text) is not None
