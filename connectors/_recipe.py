"""What a browser login sent, kept so that the next login can send the same without a browser.

A login form is replayed over HTTP only when a browser login on this system showed it can be:
the one POST the click sent carried the user name and the password exactly as typed, and every
other field of it was either a value the served login page itself holds (a CSRF token, ASP.NET's
view state, the submit button's name) or the captcha answer or TOTP code. A page that hashes or
encrypts the password, adds a field its scripts compute, sends a header of its own, or posts
twice, teaches nothing: it keeps logging in with the browser. The recipe holds names and roles,
never a value of the account's.

Before a replay the freshly served login page must still have exactly the controls the recipe was
learned on; if not, nothing is sent and the browser logs in (and may learn again).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from connectors._system import FormLogin, System

RECIPE_VERSION = 1
Role = Literal["username", "password", "captcha", "totp", "page", "const"]
CREDENTIAL_ROLES = ("username", "password", "captcha", "totp")
# Headers any browser sends by itself (and ``sec-*``); a login request with any other is not replayed.
BROWSER_HEADERS = frozenset(
    {
        *("accept", "accept-encoding", "accept-language", "cache-control", "connection", "content-length"),
        *("content-type", "cookie", "dnt", "host", "origin", "pragma", "priority", "referer"),
        *("upgrade-insecure-requests", "user-agent", "x-requested-with"),
    }
)
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


class RecipeStale(Exception):
    """The login page is not the one the recipe was learned on: nothing was sent."""


CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)


@dataclass(frozen=True)
class Served:
    """A page as the system served it: its text, and the charset it was written in."""

    text: str
    charset: str = "utf-8"

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Served:
        """Decoded by the charset its Content-Type names, else its ``<meta>``, else UTF-8."""
        said = re.search(r"charset=([\w-]+)", content_type, re.I)
        found = said[1] if said else None
        if found is None and (meta := CHARSET.search(body[:4096])):
            found = meta[1].decode("ascii")
        charset = known_charset(found or "utf-8")
        return cls(body.decode(charset, errors="replace"), charset)


def known_charset(charset: str) -> str:
    """``charset`` by its canonical name (``GBK`` and ``cp936`` alike), UTF-8 if Python does not know it.

    A page labelled gb2312 is decoded as GBK, as browsers do (WHATWG), and its forms post in GBK.
    """
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
    return "gbk" if name == "gb2312" else name


@dataclass(frozen=True)
class Posted:
    """One request the login page sent, as the browser saw it (kept in memory only)."""

    url: str
    method: str
    headers: Mapping[str, str]
    body: str | None


@dataclass(frozen=True)
class Part:
    name: str
    role: Role
    value: str | bool | None = None  # a ``const`` field's value: never one of the account's


@dataclass(frozen=True)
class LoginRecipe:
    """How this system's login form posts, as a browser login showed it."""

    post: str  # path and query of the login POST, on the system's origin
    encoding: Literal["form", "json"]
    fields: tuple[Part, ...]
    controls: tuple[str, ...]  # the named controls of the served login page it was learned on, sorted
    captcha_image: str | None  # the captcha picture's src as the page serves it
    xhr: bool  # the page posted it by XHR (X-Requested-With: XMLHttpRequest)
    user_agent: str  # the browser's: the replay looks like it
    charset: str = "utf-8"  # the login page's: a form posts its fields in it
    cookies: tuple[str, ...] = ()  # the names of the cookies the POST carried: each must be set again
    from_action: bool = False  # posted to the form's action: taken from the page anew each time

    def has(self, role: Role) -> bool:
        return any(field.role == role for field in self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECIPE_VERSION,
            "post": self.post,
            "encoding": self.encoding,
            "fields": [[f.name, f.role, f.value] for f in self.fields],
            "controls": list(self.controls),
            "captcha_image": self.captcha_image,
            "xhr": self.xhr,
            "user_agent": self.user_agent,
            "charset": self.charset,
            "cookies": list(self.cookies),
            "from_action": self.from_action,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LoginRecipe | None:
        """The recipe ``to_dict`` wrote; None for nothing, another version, or anything malformed."""
        if not data or data.get("version") != RECIPE_VERSION:
            return None
        try:
            fields = tuple(Part(str(name), role, value) for name, role, value in data["fields"])
            recipe = cls(
                post=str(data["post"]),
                encoding=data["encoding"],
                fields=fields,
                controls=tuple(str(name) for name in data["controls"]),
                captcha_image=data["captcha_image"],
                xhr=bool(data["xhr"]),
                user_agent=str(data["user_agent"]),
                charset=known_charset(str(data["charset"])),
                cookies=tuple(str(name) for name in data["cookies"]),
                from_action=bool(data["from_action"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        roles_known = all(f.role in (*CREDENTIAL_ROLES, "page", "const") for f in fields)
        return recipe if roles_known and recipe.encoding in ("form", "json") else None


@dataclass(frozen=True)
class Typed:
    """What the browser typed into the form (kept in memory only, to recognise it in the POST)."""

    username: str
    password: str
    captcha: str | None = None
    totp: str | None = None
    captcha_image: str | None = None  # the src of the captcha picture it read


def learn(served: Served, page_url: str, posts: list[Posted], typed: Typed, agent: str) -> LoginRecipe | None:
    """The recipe of a login that sent ``posts`` from the page served as ``served``; None if it
    cannot be replayed as it was sent."""
    if len(posts) != 1 or posts[0].method.upper() != "POST" or posts[0].body is None:
        return None
    post = posts[0]
    target, page = urlsplit(post.url), urlsplit(page_url)
    if (target.scheme, target.netloc) != (page.scheme, page.netloc):
        return None  # a login served by another host: more than a form
    headers = {name.lower(): value for name, value in post.headers.items()}
    if any(name not in BROWSER_HEADERS and not name.startswith("sec-") for name in headers):
        return None
    xhr = headers.get("x-requested-with", "")
    if xhr not in ("", "XMLHttpRequest"):
        return None
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    pairs = _body_pairs(post.body, kind, served.charset)
    if pairs is None or len({name for name, _ in pairs}) != len(pairs):
        return None
    values = control_values(served.text)
    fields = [_field(name, value, typed, values) for name, value in pairs]
    roles = [field.role for field in fields if field is not None]
    if None in fields or roles.count("password") != 1 or roles.count("username") != 1:
        return None
    if (typed.captcha is not None) != ("captcha" in roles) or (typed.totp is not None) != ("totp" in roles):
        return None
    if typed.captcha is not None and not typed.captcha_image:
        return None  # a picture drawn on a canvas, or a data: URL: nothing to fetch next time
    password = next(field.name for field in fields if field is not None and field.role == "password")
    from_action = _action(served.text, page_url, password) == post.url
    if not from_action and (target.query or ";" in target.path):
        return None  # an address that may carry a token of this page's, and no form to take it from anew
    return LoginRecipe(
        post=target.path + (f"?{target.query}" if target.query else ""),
        encoding="json" if kind == JSON_TYPE else "form",
        fields=tuple(field for field in fields if field is not None),
        controls=tuple(sorted(values)),
        captcha_image=typed.captcha_image if typed.captcha is not None else None,
        xhr=bool(xhr),
        user_agent=agent,
        charset=served.charset,
        cookies=tuple(sorted(_cookie_names(headers.get("cookie", "")))),
        from_action=from_action,
    )


def _cookie_names(header: str) -> set[str]:
    return {pair.split("=", 1)[0].strip() for pair in header.split(";") if "=" in pair}


def _action(html: str, page_url: str, password: str) -> str | None:
    """Where the form holding the ``password`` field posts, resolved against the page's URL."""
    for form in LexborHTMLParser(html).css("form"):
        if any(node.attributes.get("name") == password for node in form.css("input")):
            return urljoin(page_url, form.attributes.get("action") or page_url).split("#")[0]
    return None


def post_url(recipe: LoginRecipe, served: Served, page_url: str) -> str:
    """Where to post: the fresh page's form action, or the address learned; ``RecipeStale`` if the
    form now posts elsewhere."""
    learned = "{0.scheme}://{0.netloc}".format(urlsplit(page_url)) + recipe.post
    if not recipe.from_action:
        return learned
    password = next(field.name for field in recipe.fields if field.role == "password")
    action = _action(served.text, page_url, password)
    if action is None or urlsplit(action).path != urlsplit(learned).path:
        raise RecipeStale("登录表单提交到了另一个地址")
    return action


def check_cookies(recipe: LoginRecipe, held: set[str]) -> None:
    """``RecipeStale`` if a cookie the browser's login carried was not set again (a page's script set it)."""
    missing = sorted(set(recipe.cookies) - held)
    if missing:
        raise RecipeStale(f"没有得到浏览器登录时带的 cookie {', '.join(missing)}（可能由页面脚本设置）")


def _body_pairs(body: str, kind: str, charset: str) -> list[tuple[str, Any]] | None:
    if kind == FORM_TYPE:
        return parse_qsl(body, keep_blank_values=True, encoding=charset, errors="strict")
    if kind == JSON_TYPE:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return list(data.items())
    return None  # multipart, text, or nothing said: not a form we can write again


def _field(name: str, value: Any, typed: Typed, controls: dict[str, list[str]]) -> Part | None:
    if isinstance(value, bool) or value is None:
        return Part(name, "const", value)  # a script's own true/false/null, not a value of the page
    if not isinstance(value, str):
        return None  # a number is as likely a timestamp as a constant
    for role in CREDENTIAL_ROLES:
        said = getattr(typed, role)
        if said and value == said:
            return Part(name, role)
    known = controls.get(name, [])
    if known == [value]:
        return Part(name, "page")  # taken from the page anew each time: a token, the view state
    if value in known:
        return Part(name, "const", value)  # one of a radio group's or a select's options
    return None


def control_values(html: str) -> dict[str, list[str]]:
    """Every named form control of the page, with the values a browser could send for it."""
    tree = LexborHTMLParser(html)
    found: dict[str, list[str]] = {}
    for node in tree.css("input[name], button[name], select[name], textarea[name]"):
        name = node.attributes.get("name") or ""
        if not name:
            continue
        tag = node.tag
        kind = (node.attributes.get("type") or "").lower()
        if tag == "select":
            options = node.css("option")
            values = [option.attributes.get("value") or option.text(strip=True) for option in options]
        elif tag == "textarea":
            values = [node.text()]
        elif kind in ("checkbox", "radio") and node.attributes.get("value") is None:
            values = ["on"]
        else:
            values = [node.attributes.get("value") or ""]
        found.setdefault(name, []).extend(values)
    return found


def fill(recipe: LoginRecipe, served: Served, typed: Typed) -> dict[str, Any]:
    """The body to post, from the freshly served login page; ``RecipeStale`` if the page changed."""
    if served.charset != recipe.charset:
        raise RecipeStale(f"登录页的编码从 {recipe.charset} 变成了 {served.charset}")
    values = control_values(served.text)
    if tuple(sorted(values)) != recipe.controls:
        raise RecipeStale("登录页的表单项与上次浏览器登录时不同")
    body: dict[str, Any] = {}
    for field in recipe.fields:
        if field.role == "page":
            if len(values.get(field.name, [])) != 1:
                raise RecipeStale(f"登录页上的 {field.name} 不再只有一个")
            body[field.name] = values[field.name][0]
        elif field.role == "const":
            if isinstance(field.value, str) and field.value not in values.get(field.name, []):
                raise RecipeStale(f"登录页上的 {field.name} 没有上次提交的选项")
            body[field.name] = field.value
        else:
            said = getattr(typed, field.role)
            if said is None:
                raise RecipeStale(f"没有 {field.role} 可填")
            body[field.name] = said
    return body


def captcha_src(served: Served, recipe: LoginRecipe) -> str:
    """The captcha picture's src on the freshly served page; ``RecipeStale`` if it is not there."""
    tree = LexborHTMLParser(served.text)
    wanted = urlsplit(recipe.captcha_image or "").path
    for node in tree.css("img[src]"):
        src = node.attributes.get("src") or ""
        if urlsplit(src).path == wanted:
            return src
    raise RecipeStale("登录页上找不到上次的验证码图片")


class RecipeBook(Protocol):
    """Where an account's recipe is kept between runs (the vault; in memory for tests and tools)."""

    def load(self) -> dict[str, Any] | None: ...

    def keep(self, recipe: dict[str, Any] | None) -> None: ...


@dataclass
class MemoryBook:
    recipe: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.recipe

    def keep(self, recipe: dict[str, Any] | None) -> None:
        self.recipe = recipe


def replayable(system: System) -> bool:
    """May ``system``'s login be learned and sent without a browser (a form, ``FormLogin(replay=True)``)?"""
    return isinstance(system.login, FormLogin) and system.login.replay


def replays(system: System, recipe: Mapping[str, Any] | None) -> LoginRecipe | None:
    """The recipe to log into ``system`` by without a browser, if it may be."""
    return LoginRecipe.from_dict(recipe) if replayable(system) else None
