"""What ``harvest new`` recognises on a list page, as pure functions of its HTML or of the JSON it loaded.

Each finder takes what the page showed and returns what it recognised (a table, a pager, cards,
a JSON list, the logged-in proof, a captcha), so all of it is tested without a browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from robots._page import Page, _headers, _sections
from robots._scaffold_fields import Guess

# Until the list page is seen there is no selector proving a login: a page without a password field,
# away from the login page, stands in (Session also refuses a login page it is sent back to).
PROVISIONAL_PROOF = "body:not(:has(input[type=password]))"
SKIPPED = frozenset({"", "序号", "操作", "选择", "全选", "详情", "查看", "#", "no."})
NEXT_TEXTS = ("下一页", "下页", "后一页", "next", "›", "»", ">")
MORE_TEXTS = ("加载更多", "查看更多", "显示更多", "更多", "load more", "show more")
PAGE_PARAMS = ("pageNum", "pageNo", "page", "current", "pageIndex", "page_num", "p")
SIZE_PARAMS = ("pageSize", "size", "limit", "rows", "page_size", "pageLimit", "ps")
TOTAL_KEYS = ("total", "count", "totalCount", "total_count", "totalRecords", "recordsTotal", "totalElements")
PROOF_WORDS = ("username", "user", "logout", "signout", "exit")
CAPTCHA_WORDS = ("captcha", "验证码", "kaptcha", "verify", "code")
API_SIZE = 100  # rows asked of a JSON API per page, where it gives that many
SAMPLE_PAGES = 3  # list pages read for the samples the types are guessed from
SETTLE_MS = 5_000  # for the page's own scripts to load their data after it rendered
_NAME = re.compile(r"-?[A-Za-z_][\w-]*")  # an id or class usable in a selector as it is


@dataclass(frozen=True)
class Captured:
    """A response the list page's own scripts fetched: its address and body."""

    url: str
    body: str


@dataclass
class Listing:
    """The robot's ``[list]`` and fields, with what was found on the way for the header comment."""

    shape: str
    path: str
    options: dict[str, Any]
    fields: list[Guess]
    rows: int  # records on the first page
    stated_total: int | None = None
    notes: list[str] = field(default_factory=list)  # what a person should check, in Chinese


@dataclass(frozen=True)
class Found:
    """What ``harvest new`` found: the system declaration's parts and the list."""

    name: str
    title: str
    base_url: str
    login_path: str
    home: str
    logged_in: str
    proof_checked: bool  # False: logged_in fell back to the list's own selector
    captcha: str
    listing: Listing
    list_title: str


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port`` and the path with its query of an absolute URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} 不是完整的网址：请写成 http://主机:端口/路径")
    return f"{parts.scheme}://{parts.netloc}", (parts.path or "/") + (
        f"?{parts.query}" if parts.query else ""
    )


def has_captcha(login_html: str) -> bool:
    """Whether the login page shows an image whose src, id, class or alt says captcha/验证码/code."""
    for image in LexborHTMLParser(login_html).css("img"):
        said = " ".join(str(image.attributes.get(a) or "") for a in ("src", "id", "class", "alt")).lower()
        if any(word in said for word in CAPTCHA_WORDS):
            return True
    return False


def proof_selector(list_html: str, login_html: str, fallback: str) -> tuple[str, bool]:
    """A selector on the list page (as fetched) and not on the login page: the user's name, a
    退出/注销 link; ``fallback`` (the list's own selector) with False when none is found."""
    page, login = LexborHTMLParser(list_html), LexborHTMLParser(login_html)
    candidates: list[str] = []
    for node in page.css("[id], [class]"):
        candidates += [f"#{v}" for v in _ids(node) if any(w in v.lower() for w in PROOF_WORDS)]
        candidates += [f".{v}" for v in _classes(node) if any(w in v.lower() for w in PROOF_WORDS)]
    for node in page.css("a[href], form[action]"):
        attribute = "href" if node.tag == "a" else "action"
        target = str(node.attributes.get(attribute) or "")
        if "logout" in target.lower() or "exit" in target.lower():
            candidates.append(f'{node.tag}[{attribute}="{target}"]')
    candidates += [f'a:has-text("{word}")' for word in ("退出", "注销")]
    for css in candidates:
        lexbor = css.replace(":has-text(", ":lexbor-contains(")
        if page.css_first(lexbor) is not None and login.css_first(lexbor) is None:
            return css, True
    return fallback, False


@dataclass(frozen=True)
class Table:
    """The list's table: its selector and, per header kept, the values read under it."""

    css: str
    columns: dict[str, list[str]]
    stated_total: int | None


def find_table(html: str, url: str) -> Table | None:
    """The largest ``<table>`` with a header, read as the walk will read it (``Page.table``)."""
    page = Page(html, url)
    best: tuple[int, LexborNode, list[str]] | None = None
    for node in page.tree.css("table"):
        head, body = _sections(node)
        headers = [texts[-1] for texts in _headers(head)]
        kept = list(dict.fromkeys(h for h in headers if h.strip().lower() not in SKIPPED))
        if kept and (best is None or len(body) > best[0]):
            best = (len(body), node, kept)
    if best is None:
        return None
    css = selector(page.tree, best[1])
    rows = page.table(css, {header: header for header in best[2]})
    columns = {header: [row[header] for row in rows] for header in best[2]}
    return Table(css, columns, page.stated_total())


def find_pager(html: str, url: str, base_url: str) -> tuple[str, dict[str, Any]] | None:
    """``("pages", {path, last})`` for numbered links that differ in one query parameter, or
    ``("follow", {next[, render]})`` for a 下一页 link (``render`` when it runs a script)."""
    tree = LexborHTMLParser(html)
    numbered = [
        (a, text, urljoin(url, href))
        for a in tree.css("a[href]")
        if (text := a.text(strip=True)).isdigit()
        and not (href := str(a.attributes.get("href") or "")).lower().startswith(("javascript:", "#"))
    ]
    for param, (a, link) in _page_params(numbered).items():
        if not link.startswith(base_url):
            continue
        parts = urlsplit(link)
        query = [(k, "__N__" if k == param else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        template = parts.path + "?" + urlencode(query).replace("__N__", "{n}")
        return "pages", {"path": template, "last": _container(tree, a) + " a"}
    for a in tree.css("a, button"):
        if a.text(strip=True).lower() not in NEXT_TEXTS:
            continue
        href = str(a.attributes.get("href") or "").strip()
        options: dict[str, Any] = {"next": selector(tree, a, text=a.text(strip=True))}
        if href.lower().startswith("javascript:") or a.tag == "button":
            options["render"] = True
        elif not href or href == "#":
            continue
        return "follow", options
    return None


def find_cards(html: str, url: str) -> tuple[str, str | None, dict[str, list[str]]] | None:
    """Repeated cards of ``<dt>`` label / ``<dd>`` value pairs under a 加载更多 button: the card's
    selector, the button's, and per label the values read."""
    tree = LexborHTMLParser(html)
    counts: dict[str, int] = {}
    for node in tree.css("[class]"):
        if node.css_first("dt") is not None and node.css_first("dd") is not None:
            for name in _classes(node):
                counts[name] = counts.get(name, 0) + 1
    repeated = [name for name, count in counts.items() if count > 1]
    if not repeated:
        return None
    item = "." + max(repeated, key=lambda name: counts[name])
    button = next(
        (
            selector(tree, node, text=node.text(strip=True))
            for node in tree.css("button, a, input[type=button]")
            if node.text(strip=True).lower() in MORE_TEXTS
        ),
        None,
    )
    labels = [n.text(strip=True) for n in tree.css_first(item).css("dt")]  # type: ignore[union-attr]
    rows = Page(html, url).records(item, {label: label for label in labels})
    return item, button, {label: [row[label] for row in rows] for label in labels}


def find_api(captured: Sequence[Captured], base_url: str) -> Api | None:
    """The JSON list the page loaded: the answer holding the most objects in a list beside a count."""
    best: Api | None = None
    for reply in captured:
        try:
            body = json.loads(reply.body)
        except ValueError:
            continue
        if not isinstance(body, dict) or not reply.url.startswith(base_url):
            continue
        rows = next((k for k, v in body.items() if _objects(v)), None)
        total = next((k for k in TOTAL_KEYS if type(body.get(k)) is int), None)
        if rows is None or total is None or (best is not None and len(body[rows]) <= len(best.items)):
            continue
        parts = urlsplit(reply.url)
        query = dict(parse_qsl(parts.query))
        page = next((p for p in PAGE_PARAMS if p in query), "pageNum")
        size = next((p for p in SIZE_PARAMS if p in query), "pageSize")
        params = {k: v for k, v in query.items() if k not in (page, size) and v}
        seen = int(query[size]) if query.get(size, "").isdigit() else len(body[rows])
        best = Api(parts.path, params, page, size, seen, rows, total, body[rows], int(body[total]))
    return best


@dataclass(frozen=True)
class Api:
    path: str
    params: dict[str, str]
    page_param: str
    size_param: str
    size: int
    rows: str
    total_key: str
    items: list[dict[str, Any]]
    total: int


def json_titles(items: Sequence[Mapping[str, Any]], table: Table | None) -> dict[str, str]:
    """The header each JSON key's values show under in the page's rendered table, where they do."""
    if table is None or not items:
        return {}
    titles: dict[str, str] = {}
    for key in items[0]:
        for header, values in table.columns.items():
            shown = values[: len(items)]
            if (
                shown
                and header not in titles.values()
                and all(
                    str(item.get(key) if item.get(key) is not None else "") == value
                    for item, value in zip(items, shown, strict=False)
                )
            ):
                titles[key] = header
                break
    return titles


def selector(tree: LexborHTMLParser, node: LexborNode, *, text: str | None = None) -> str:
    """A CSS selector whose first match in ``tree`` is ``node``: its id, a class, or its text."""
    tag = node.tag or "*"
    # The last class first: frameworks put their generic ones first (class="data-table persons").
    for css in [f"#{v}" for v in _ids(node)] + [f"{tag}.{v}" for v in reversed(_classes(node))]:
        if tree.css_first(css) == node:
            return css
    if text:
        return f'{tag}:has-text("{text}")'
    parent = node.parent
    if parent is not None and parent.tag not in ("html", "body", None):
        return f"{selector(tree, parent)} > {tag}"
    return tag


def _container(tree: LexborHTMLParser, node: LexborNode) -> str:
    """The nearest ancestor of a pager link with an id or a class: the pager."""
    parent = node.parent
    while parent is not None and parent.tag not in ("body", "html"):
        for css in [f"#{v}" for v in _ids(parent)] + [f".{v}" for v in _classes(parent)]:
            return css
        parent = parent.parent
    return "body"


def _page_params(numbered: list[tuple[LexborNode, str, str]]) -> dict[str, tuple[LexborNode, str]]:
    """Query parameters holding a numbered link's number (or one less: pages from 0), the one most
    links hold first, each with the first link holding it (links to records hold none)."""
    holders: dict[str, list[tuple[LexborNode, str]]] = {}
    for a, text, url in numbered:
        for k, v in parse_qsl(urlsplit(url).query):
            if v.isdigit() and int(text) - int(v) in (0, 1):
                holders.setdefault(k, []).append((a, url))
    ranked = sorted(holders, key=lambda p: (-len(holders[p]), p not in PAGE_PARAMS, p))
    return {param: holders[param][0] for param in ranked}


def _objects(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _ids(node: LexborNode) -> list[str]:
    value = str(node.attributes.get("id") or "")
    return [value] if _NAME.fullmatch(value) else []


def _classes(node: LexborNode) -> list[str]:
    return [name for name in str(node.attributes.get("class") or "").split() if _NAME.fullmatch(name)]
